"""Soak: kill -9 the leader of a 3-node shard 20 times under write load
(restarting each killed node), then check that every acknowledged SET and
INCR survived. Suite 'soak' (not part of scripts/test's default run):

    meson test -C build --suite soak --print-errorlogs
"""
import os
import time
import unittest

from harness import main
from test_raft import Cluster, Writer, check_acked

KILLS = int(os.environ.get("OBORO_SOAK_KILLS", "20"))


class LeaderKillSoak(unittest.TestCase):
    def test_leader_killed_repeatedly(self):
        c = Cluster(3)
        try:
            w = Writer(c, "soak:")
            w.start()
            failovers = []
            for n in range(KILLS):
                time.sleep(0.3)
                l = c.leader()
                killed_at = time.time()
                c.kill(l)
                c.leader(exclude=(l,))
                deadline = time.time() + 15
                while not [t for t in w.acks_at if t > killed_at]:
                    self.assertLess(time.time(), deadline, "kill %d: no write acknowledged" % n)
                    time.sleep(0.01)
                failovers.append(min(t for t in w.acks_at if t > killed_at) - killed_at)
                c.start(l)
            w.stop.set()
            w.join(10)
            check_acked(self, c.client(c.leader()), w)
            failovers.sort()
            print("%d leader kills, %d writes acknowledged, failover (kill -9 to next "
                  "acknowledged write) median %.0f ms, max %.0f ms"
                  % (KILLS, len(w.acked), failovers[len(failovers) // 2] * 1000,
                     failovers[-1] * 1000))
        finally:
            c.close(check=True)


if __name__ == "__main__":
    main()
