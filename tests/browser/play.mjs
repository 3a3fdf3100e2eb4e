// Play an LL-HLS stream with hls.js in headless Chromium and report, as one
// JSON line on stdout, how it went: media time played, stalls, errors and
// the live latency hls.js measured.
//
//   node play.mjs URL SECONDS [CONFIG_JSON]
//
// CONFIG_JSON: hls.js settings laid over the defaults used here
// ({"lowLatencyMode": true, "backBufferLength": 10}), e.g.
// '{"liveSyncDuration": 0.4, "maxLiveSyncPlaybackRate": 1.5}'.
//
// Exit status 0 when the report was produced (the caller judges it), 2 when
// the browser or the page could not run at all.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const [url, secondsArg, configArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 30);
let config = {};
try {
  config = JSON.parse(configArg || '{}');
} catch (e) {
  config = null;
}
if (!url || !(seconds > 0) || config === null || typeof config !== 'object') {
  console.error('usage: node play.mjs URL SECONDS [CONFIG_JSON]');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const profile = mkdtempSync(join(tmpdir(), 'oboro-chromium-'));
let context;

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const page = context.pages()[0] || await context.newPage();
  const console_lines = [];
  page.on('console', (m) => { if (console_lines.length < 50) console_lines.push(m.text()); });
  await page.setContent('<!doctype html><video id="v" muted playsinline></video>');
  await page.addScriptTag({ path: join(here, 'node_modules/hls.js/dist/hls.min.js') });
  const report = await page.evaluate(async ({ url, seconds, config }) => {
    const r = {
      supported: Hls.isSupported(), hlsjs: Hls.version, played: 0, stalls: 0, waiting: 0, startup_waiting: 0,
      config, target_latency: null, max_rate: 1,
      // start-up milestones, ms after the player was created: first media
      // playlist received, first media (init segment excluded) received,
      // playback started; hls.js never makes up what passes between the
      // first two and the last, so it adds to its live latency
      startup: { playlist_ms: null, first_media_ms: null, playing_ms: null },
      errors: [], latency: [], pdt_latency: [], buffered: [], waiting_at: [], seeks: [], stall_detail: [], started_after_ms: null, level: null,
    };
    if (!r.supported) return r;
    const video = document.getElementById('v');
    const hls = new Hls(Object.assign({ lowLatencyMode: true, backBufferLength: 10 }, config));
    const t0 = performance.now();
    let playing = false, start = 0;
    hls.on(Hls.Events.ERROR, (_, d) => {
      if (d.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) r.stalls++;
      if (r.errors.length < 20) r.errors.push(`${d.type}/${d.details}/${d.fatal ? 'fatal' : 'ok'}`);
    });
    hls.on(Hls.Events.FRAG_LOADED, (_, d) => {
      if (r.startup.first_media_ms === null && d.frag.sn !== 'initSegment')
        r.startup.first_media_ms = Math.round(performance.now() - t0);
    });
    hls.on(Hls.Events.LEVEL_LOADED, (_, d) => {
      if (r.startup.playlist_ms === null) r.startup.playlist_ms = Math.round(performance.now() - t0);
      r.level = { live: d.details.live, partTarget: d.details.partTarget,
                  canBlock: d.details.canBlockReload, canSkip: d.details.canSkipUntil };
    });
    video.addEventListener('playing', () => {
      if (!playing) {
        playing = true; start = video.currentTime; r.started_after_ms = performance.now() - t0;
        r.startup.playing_ms = Math.round(r.started_after_ms);
      }
    });
    // a 'waiting' in the first second of media is the start settling; any
    // later one is a stall the viewer sees
    // hls.js seeks to its live sync point once it knows the live edge; a
    // 'waiting' while seeking is that jump, not a stall
    video.addEventListener('seeking', () => {
      if (playing) r.seeks.push(+(video.currentTime - start).toFixed(3));
    });
    video.addEventListener('waiting', () => {
      if (!playing) return;
      const at = video.currentTime - start;
      r.waiting_at.push(+at.toFixed(3));
      if (video.seeking || at <= 1.0) { r.startup_waiting++; return; }
      r.waiting++;
      const b = video.buffered, ranges = [];
      for (let i = 0; i < b.length; i++) ranges.push([+b.start(i).toFixed(3), +b.end(i).toFixed(3)]);
      if (r.stall_detail.length < 5)
        r.stall_detail.push({ t: +video.currentTime.toFixed(3), ranges,
          pdt_latency: hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : null });
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    video.play().catch(() => {});
    // wait for playback to begin (at most 15 s), then watch it
    for (let i = 0; i < 150 && !playing; i++) await new Promise((res) => setTimeout(res, 100));
    if (!playing) return r;
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
      await new Promise((res) => setTimeout(res, 500));
      if (Number.isFinite(hls.latency)) r.latency.push(hls.latency);
      if (video.playbackRate > r.max_rate) r.max_rate = video.playbackRate;
      if (hls.playingDate) r.pdt_latency.push((Date.now() - hls.playingDate.getTime()) / 1000);
      const b = video.buffered;
      r.buffered.push(b.length ? +(b.end(b.length - 1) - video.currentTime).toFixed(3) : 0);
    }
    r.played = video.currentTime - start;
    r.target_latency = hls.targetLatency;
    hls.destroy();
    return r;
  }, { url, seconds, config });
  report.console = console_lines;
  console.log(JSON.stringify(report));
} catch (e) {
  console.error(`play.mjs: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 2;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
