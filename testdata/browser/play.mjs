#!/usr/bin/env node
// play.mjs plays one HLS or DASH URL in headless Chromium (Debian's, driven by
// playwright-core) with hls.js or dash.js, and prints one JSON line saying how
// far playback got. internal/browsertest runs it from Go tests.
//
// Config: a JSON object as the first argument, or on standard input when there
// is no argument (or it is "-"):
//
//   {"url": "...", "kind": "hls"|"dash", "minTime": 2, "timeoutMs": 10000, "live": false}
//
// minTime is how many seconds currentTime must exceed (for live: how many
// seconds playback must advance past where it started, since a live stream
// starts near its live edge, not at 0). timeoutMs bounds the wait from page
// load to that point; browser start-up is not counted.
//
// The player page is served by an HTTP server this script starts on
// 127.0.0.1 at a port of its own, so it is a different origin from the media
// URL: the media server must send CORS headers, as it must for a real player.
//
// Output, one line on stdout:
//
//   {"ok", "currentTime", "startTime", "played", "duration", "durationInfinite",
//    "videoWidth", "videoHeight", "decodedFrames", "droppedFrames",
//    "timeToFirstFrameMs", "launchMs", "wallMs", "behindMs", "partsLoaded",
//    "errors": [{source, message, fatal, t, startup}],
//    "events": [{t, type, ct, detail}], "harnessError"}
//
// ok is true when the target was reached within timeoutMs with no fatal player
// error. errors holds hls.js ERROR events (source "hls"), dash.js error and
// playbackError events ("dash"), the video element's error ("video"), page
// console errors ("console"), uncaught page exceptions ("page") and the
// harness's own failures ("harness"); t is ms since the page started
// loading, startup is true for player errors raised before the video
// element's first playing event. Exit status: 0 ok, 1 playback failed, 2 the harness itself
// could not run (harnessError says why).
//
// behindMs (hls.js only, null otherwise) is the median, over the polls
// after the first second played, of how far the playhead's date is behind
// the wall clock: for a live camera stamped with its capture time, how far
// behind the camera the viewer is. The date is hls.playingDate (from
// EXT-X-PROGRAM-DATE-TIME) or, in a playlist without dates, the media
// timestamp under the playhead (currentTime plus the initPTS hls.js
// reports), which for Kinema's fMP4 is the producer time since the epoch.
// partsLoaded counts LL-HLS partial segments hls.js loaded.
//
// dash.js is pointed at the page server's /utc for the time when a live MPD
// has no UTCTiming element (its default, time.akamai.com, is unreachable
// from a test machine).
//
// Environment: KINEMA_CHROMIUM overrides the browser (default /usr/bin/chromium);
// KINEMA_PLAY_DEBUG=1 logs every request, response and console message to
// standard error.

import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const chromiumPath = process.env.KINEMA_CHROMIUM || '/usr/bin/chromium';
const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];
const maxEvents = 300;
const maxErrors = 100;
const started = Date.now();

function emit(result, code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

function harnessFail(message) {
  emit({ ok: false, harnessError: message, errors: [{ source: 'harness', message, fatal: true }], events: [] }, 2);
}

// What to clean up if the run is cut short (watchdog, SIGTERM, SIGINT).
let activeContext = null;
let activeDir = null;
let bailing = false;

function removeDir(dir) {
  if (!dir) return;
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch (e) {
    process.stderr.write(`play.mjs: cannot remove ${dir}: ${e.message}\n`);
  }
}

async function bail(message) {
  if (bailing) return;
  bailing = true;
  setTimeout(() => harnessFail(`${message} (cleanup timed out)`), 5000).unref();
  if (activeContext) await activeContext.close().catch(() => {});
  removeDir(activeDir);
  harnessFail(message);
}

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => bail(`stopped by ${sig}`));

async function readConfig() {
  let text = process.argv[2];
  if (text === undefined || text === '-') {
    const chunks = [];
    for await (const c of process.stdin) chunks.push(c);
    text = Buffer.concat(chunks).toString('utf8');
  }
  const cfg = JSON.parse(text);
  if (typeof cfg.url !== 'string' || cfg.url === '') throw new Error('config: url is required');
  if (cfg.kind !== 'hls' && cfg.kind !== 'dash') throw new Error(`config: kind must be "hls" or "dash", not ${JSON.stringify(cfg.kind)}`);
  return {
    url: cfg.url,
    kind: cfg.kind,
    minTime: Number(cfg.minTime ?? 2),
    timeoutMs: Number(cfg.timeoutMs ?? 10000),
    live: Boolean(cfg.live),
    debug: Boolean(process.env.KINEMA_PLAY_DEBUG),
  };
}

// pageMain runs inside the page. It is serialised with toString(), so it must
// not refer to anything outside itself.
function pageMain(cfg) {
  const t0 = performance.now();
  const st = { errors: [], events: [], fatal: false, firstFrameMs: null, startTime: null, ended: false, dropped: 0 };
  window.__kinema = st;
  const video = document.getElementById('v');
  const now = () => Math.round(performance.now() - t0);
  const ev = (type, detail) => {
    if (st.events.length >= 300) { st.dropped++; return; }
    const e = { t: now(), type, ct: Number(video.currentTime.toFixed(3)) };
    if (detail !== undefined) e.detail = detail;
    st.events.push(e);
  };
  const err = (source, message, fatal) => {
    if (st.errors.length < 100) st.errors.push({ source, message: String(message), fatal: Boolean(fatal), t: now(), startup: !st.playing });
    if (fatal) st.fatal = true;
    ev('error', `${source}: ${message}`);
  };
  const markStart = () => {
    if (st.startTime === null) st.startTime = video.currentTime;
  };

  for (const type of ['loadstart', 'loadedmetadata', 'loadeddata', 'canplay', 'playing', 'waiting', 'stalled', 'pause', 'seeking', 'seeked', 'ended']) {
    video.addEventListener(type, () => {
      if (type === 'ended') st.ended = true;
      ev(type);
    });
  }
  video.addEventListener('error', () => {
    const me = video.error;
    err('video', me ? `MediaError code ${me.code}: ${me.message || ''}` : 'unknown media error', true);
  });
  video.addEventListener('playing', () => { st.playing = true; markStart(); });
  if ('requestVideoFrameCallback' in video) {
    video.requestVideoFrameCallback((_now, meta) => {
      if (st.firstFrameMs === null) st.firstFrameMs = now();
      ev('firstframe', { mediaTime: meta.mediaTime, width: meta.width, height: meta.height });
      markStart();
    });
  }
  video.addEventListener('timeupdate', () => {
    if (video.currentTime > 0 && st.firstFrameMs === null && !('requestVideoFrameCallback' in video)) {
      st.firstFrameMs = now();
      markStart();
    }
  });
  const play = () => {
    const p = video.play();
    if (p && p.catch) p.catch((e) => { if (e && e.name !== 'AbortError') err('video', `play() rejected: ${e}`, false); });
  };

  if (cfg.kind === 'hls') {
    const Hls = window.Hls;
    if (!Hls || !Hls.isSupported()) { err('hls', 'hls.js not loaded or MSE not supported', true); return; }
    const hls = new Hls({ liveDurationInfinity: cfg.live, debug: Boolean(cfg.debug) });
    window.__player = hls;
    hls.on(Hls.Events.ERROR, (_e, d) => {
      const parts = [`${d.type}/${d.details}`];
      if (d.response && d.response.code !== undefined) parts.push(`http ${d.response.code}`);
      const u = (d.frag && d.frag.url) || (d.context && d.context.url) || d.url;
      if (u) parts.push(u);
      if (d.reason) parts.push(d.reason);
      if (d.error && d.error.message && d.error.message !== d.reason) parts.push(d.error.message);
      err('hls', parts.join(' '), d.fatal);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => ev('hls:manifestParsed', { levels: d.levels.length, audioTracks: (d.audioTracks || []).length }));
    hls.on(Hls.Events.LEVEL_LOADED, (_e, d) => {
      if (!st.levelSeen) { st.levelSeen = true; ev('hls:levelLoaded', { live: d.details.live, fragments: d.details.fragments.length, targetduration: d.details.targetduration }); }
    });
    hls.on(Hls.Events.FRAG_LOADED, (_e, d) => { if (d.part) st.partsLoaded = (st.partsLoaded || 0) + 1; });
    hls.on(Hls.Events.INIT_PTS_FOUND, (_e, d) => { if (d.id === 'main') st.ptsOffset = d.initPTS / d.timescale; });
    hls.on(Hls.Events.FRAG_BUFFERED, (_e, d) => {
      st.fragsBuffered = (st.fragsBuffered || 0) + 1;
      if (st.fragsBuffered === 1) ev('hls:firstFragBuffered', { sn: d.frag.sn, type: d.frag.type });
    });
    hls.on(Hls.Events.MEDIA_ATTACHED, () => { ev('hls:mediaAttached'); hls.loadSource(cfg.url); });
    hls.on(Hls.Events.MANIFEST_PARSED, play);
    hls.attachMedia(video);
  } else {
    const dashjs = window.dashjs;
    if (!dashjs) { err('dash', 'dash.js not loaded', true); return; }
    const player = dashjs.MediaPlayer().create();
    window.__player = player;
    const E = dashjs.MediaPlayer.events;
    // dash.js has no fatal flag: every error it raises stops or breaks
    // playback except a failed clock synchronisation (code 16), after which
    // it carries on with the browser's clock.
    const nonFatal = new Set([16]);
    player.on(E.ERROR, (e) => {
      const x = e.error || {};
      let msg = typeof x === 'object' ? `code ${x.code}: ${x.message}` : String(x);
      if (e.event && e.event.message) msg += ` ${e.event.message}`;
      err('dash', msg, !(typeof x === 'object' && nonFatal.has(x.code)));
    });
    player.on(E.PLAYBACK_ERROR, (e) => {
      const me = e.error;
      err('dash', `playbackError: ${me ? `MediaError code ${me.code} ${me.message || ''}` : 'unknown'}`, true);
    });
    player.on(E.MANIFEST_LOADED, (e) => ev('dash:manifestLoaded', { type: e.data && e.data.type }));
    player.on(E.STREAM_INITIALIZED, () => ev('dash:streamInitialized', { dynamic: player.isDynamic() }));
    player.on(E.FRAGMENT_LOADING_COMPLETED, (e) => {
      st.fragsLoaded = (st.fragsLoaded || 0) + 1;
      if (st.fragsLoaded === 1) ev('dash:firstFragmentLoaded', { mediaType: e.mediaType });
    });
    player.updateSettings({
      debug: { logLevel: cfg.debug ? dashjs.Debug.LOG_LEVEL_DEBUG : dashjs.Debug.LOG_LEVEL_WARNING },
      // For a live MPD without a UTCTiming element dash.js asks
      // https://time.akamai.com for the time, unreachable from a test
      // machine; the harness's page server answers instead, with the
      // machine's clock. An MPD's own UTCTiming still takes precedence.
      streaming: { utcSynchronization: { defaultTimingSource: { scheme: 'urn:mpeg:dash:utc:http-iso:2014', value: location.origin + '/utc' } } },
    });
    // dash.js starts playback itself (autoplay). Calling video.play() here
    // would fire the element's play event before dash.js listens for it;
    // dash.js then never sees playback start and, for a live MPD, never
    // refreshes the manifest.
    player.initialize(video, cfg.url, true);
  }
}

function pageHTML(cfg) {
  const lib = cfg.kind === 'hls' ? '/lib/hls.js' : '/lib/dash.js';
  const json = JSON.stringify(cfg).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>kinema playback</title></head>
<body>
<video id="v" muted playsinline width="320" height="240"></video>
<script src="${lib}"></script>
<script>(${pageMain.toString()})(${json});</script>
</body></html>
`;
}

const libs = {
  '/lib/hls.js': path.join(here, 'node_modules/hls.js/dist/hls.min.js'),
  '/lib/dash.js': path.join(here, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'),
};

function startPageServer(cfg) {
  const html = pageHTML(cfg);
  const server = http.createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    if (p === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else if (p === '/utc') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      res.end(new Date().toISOString());
    } else if (libs[p]) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      fs.createReadStream(libs[p]).pipe(res);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  let cfg;
  try {
    cfg = await readConfig();
  } catch (e) {
    return harnessFail(`bad config: ${e.message}`);
  }
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    return harnessFail(`cannot load playwright-core (run: npm ci --prefix testdata/browser): ${e.message}`);
  }
  for (const [p, f] of Object.entries(libs)) {
    if (!fs.existsSync(f)) return harnessFail(`missing ${f} for ${p} (run: npm ci --prefix testdata/browser)`);
  }
  if (!fs.existsSync(chromiumPath)) {
    return harnessFail(`no Chromium at ${chromiumPath} (run: apt-get install chromium, or scripts/setup.sh)`);
  }

  // A hard stop in case the browser hangs somewhere Playwright does not time out.
  const watchdog = setTimeout(() => bail(`watchdog: no result after ${cfg.timeoutMs + 40000} ms`), cfg.timeoutMs + 40000);
  watchdog.unref();

  const server = await startPageServer(cfg);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kinema-chromium-'));
  activeDir = userDataDir;
  const errors = [];
  const events = [];
  let context;
  let launchMs;
  try {
    const t = Date.now();
    try {
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: chromiumPath,
        headless: true,
        args: chromiumArgs,
        timeout: 30000,
        // bail() closes the browser and removes the profile on these.
        handleSIGTERM: false,
        handleSIGINT: false,
      });
      activeContext = context;
    } catch (e) {
      return harnessFail(`cannot launch ${chromiumPath}: ${e.message.split('\n')[0]}`);
    }
    launchMs = Date.now() - t;
    const page = context.pages()[0] || (await context.newPage());
    // Browser-side events and errors carry ms since navigation started,
    // close to the page's own clock (which starts when its script runs).
    let t1 = Date.now();
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const loc = m.location();
      let text = m.text();
      if (loc && loc.url && !text.includes(loc.url) && !loc.url.startsWith(origin)) text += ` (${loc.url})`;
      if (errors.length < maxErrors) errors.push({ source: 'console', message: text, fatal: false, t: Date.now() - t1 });
    });
    page.on('pageerror', (e) => {
      if (errors.length < maxErrors) errors.push({ source: 'page', message: String(e && e.stack ? e.stack.split('\n')[0] : e), fatal: false, t: Date.now() - t1 });
    });
    if (process.env.KINEMA_PLAY_DEBUG) {
      page.on('request', (r) => process.stderr.write(`${Date.now() - t1}ms request ${r.method()} ${r.url()}\n`));
      page.on('response', (r) => process.stderr.write(`${Date.now() - t1}ms response ${r.status()} ${r.url()}\n`));
      page.on('console', (m) => process.stderr.write(`${Date.now() - t1}ms console.${m.type()}: ${m.text()}\n`));
    }
    page.on('requestfailed', (r) => {
      if (events.length < maxEvents) events.push({ t: Date.now() - t1, type: 'requestfailed', detail: `${r.url()} ${r.failure() ? r.failure().errorText : ''}` });
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && events.length < maxEvents) events.push({ t: Date.now() - t1, type: 'http', detail: `${r.status()} ${r.url()}` });
    });

    const target = cfg.minTime;
    t1 = Date.now();
    await page.goto(origin + '/', { waitUntil: 'load', timeout: cfg.timeoutMs });
    let snap;
    let fatalAt = null;
    const behind = [];
    for (;;) {
      snap = await page.evaluate(() => {
        const v = document.getElementById('v');
        const st = window.__kinema || { errors: [], events: [], fatal: false };
        const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
        return {
          currentTime: v ? v.currentTime : 0,
          duration: v ? v.duration : NaN,
          durationInfinite: v ? v.duration === Infinity : false,
          videoWidth: v ? v.videoWidth : 0,
          videoHeight: v ? v.videoHeight : 0,
          decodedFrames: q ? q.totalVideoFrames : 0,
          droppedFrames: q ? q.droppedVideoFrames : 0,
          behindMs: window.__player && window.__player.playingDate ? Date.now() - window.__player.playingDate.getTime()
            : st.ptsOffset != null && v ? Date.now() - (v.currentTime + st.ptsOffset) * 1000 : null,
          st,
        };
      });
      if (snap.behindMs !== null && snap.st.startTime !== null && snap.currentTime - snap.st.startTime > 1) behind.push(snap.behindMs);
      const start = snap.st.startTime ?? 0;
      snap.played = snap.currentTime - start;
      const progress = cfg.live ? (snap.st.startTime === null ? 0 : snap.played) : snap.currentTime;
      snap.ok = progress > target && !snap.st.fatal;
      if (snap.ok) break;
      if (snap.st.fatal || snap.st.ended) {
        // Give the console a moment to report what went wrong (CORS, HTTP status).
        if (fatalAt === null) fatalAt = Date.now();
        if (Date.now() - fatalAt >= 300) break;
      }
      if (Date.now() - t1 > cfg.timeoutMs) {
        errors.push({ t: Date.now() - t1, source: 'harness', message: `timeout: ${cfg.live ? 'played' : 'currentTime'} ${progress.toFixed(3)} s did not exceed ${target} s within ${cfg.timeoutMs} ms`, fatal: false });
        break;
      }
      await sleep(100);
    }
    const st = snap.st;
    if (st.dropped) events.push({ t: Date.now() - t1, type: 'truncated', detail: `${st.dropped} events dropped` });
    const result = {
      ok: snap.ok,
      currentTime: snap.currentTime,
      startTime: st.startTime,
      played: snap.played,
      duration: Number.isFinite(snap.duration) ? snap.duration : null,
      durationInfinite: snap.durationInfinite,
      videoWidth: snap.videoWidth,
      videoHeight: snap.videoHeight,
      decodedFrames: snap.decodedFrames,
      droppedFrames: snap.droppedFrames,
      timeToFirstFrameMs: st.firstFrameMs,
      behindMs: behind.length ? behind.sort((a, b) => a - b)[Math.floor(behind.length / 2)] : null,
      partsLoaded: st.partsLoaded || 0,
      launchMs,
      wallMs: Date.now() - started,
      errors: [...st.errors, ...errors].sort((a, b) => a.t - b.t),
      events: [...st.events, ...events].sort((a, b) => a.t - b.t),
    };
    await context.close().catch(() => {});
    context = null;
    activeContext = null;
    if (!bailing) emit(result, result.ok ? 0 : 1);
  } catch (e) {
    if (!bailing) harnessFail(`harness: ${e && e.message ? e.message.split('\n')[0] : e}`);
  } finally {
    server.close();
    if (!bailing) {
      if (context) await context.close().catch(() => {});
      removeDir(userDataDir);
    }
  }
}

main();
