"""The Dockerfile cannot be built here (no container engine), so its
package lists are checked against scripts/ and against what the built
oborod actually links."""
import os
import re
import subprocess
import unittest

import harness

SRC = os.environ.get("OBORO_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")


def listed(name):
    with open(os.path.join(SRC, "scripts", name)) as f:
        return [l.split("#")[0].strip() for l in f if l.split("#")[0].strip()]


def dockerfile_stages():
    """Packages installed by apt-get in each FROM stage, in order."""
    with open(os.path.join(SRC, "Dockerfile")) as f:
        text = f.read().replace("\\\n", " ")
    stages = []
    for line in text.splitlines():
        if line.startswith("FROM "):
            stages.append([])
        m = re.search(r"apt-get install ([^&]*)", line)
        if m:
            stages[-1] += [w for w in m.group(1).split() if not w.startswith("-")]
    return stages


class PackagingTest(unittest.TestCase):
    def test_build_stage_matches_scripts(self):
        build, runtime = dockerfile_stages()
        self.assertEqual(sorted(build), sorted(listed("packages-build.txt")))
        self.assertEqual(sorted(runtime), sorted(listed("packages-runtime.txt")))

    def test_runtime_packages_cover_linked_libraries(self):
        out = subprocess.run(["ldd", harness.OBORO_BIN], capture_output=True, text=True,
                             check=True).stdout
        runtime = set(listed("packages-runtime.txt"))
        base = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
        for line in out.splitlines():
            m = re.search(r"=> (/\S+)", line)
            if not m or "libasan" in line or "libubsan" in line:
                continue
            path = os.path.realpath(m.group(1))
            owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if owner.returncode != 0:
                continue
            pkg = owner.stdout.split(":")[0]
            # transitive dependencies come with the listed packages; the
            # direct ones must be listed
            direct = any(x in path for x in ("libevent", "libssl", "libcrypto", "libraft",
                                             "libuv", "libavformat", "libavcodec",
                                             "libavutil", "libswscale"))
            if direct:
                self.assertTrue(pkg in runtime or pkg in base, "%s (%s) not in packages-runtime.txt"
                                % (pkg, path))

    def test_scripts_install_same_build_list(self):
        with open(os.path.join(SRC, "scripts", "run")) as f:
            self.assertIn("packages-build.txt", f.read())
        with open(os.path.join(SRC, "scripts", "test")) as f:
            t = f.read()
            self.assertIn("packages-build.txt", t)
            self.assertIn("packages-test.txt", t)


if __name__ == "__main__":
    harness.main()
