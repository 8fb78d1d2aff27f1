#!/usr/bin/env node
// The worker's process starter (activities/spawner.ts): a small Node process that starts programs for the
// worker and reports on them over its IPC channel. Starting a program forks the process that starts it, and
// fork copies the page tables of the whole address space: ~50 ms of the worker's main thread per program
// at 900 MB resident (measured), during which no workflow task or heartbeat moves. Forked from here, ~45 MB,
// it costs a few ms, off the worker's thread.
//
// Requests: { id, file, args, cwd, env, detached, input?, watch? }. Answers, in order: { id, ev: 'spawn', pid } or
// { id, ev: 'error', message }; { id, ev: 'stdout' | 'stderr', data }; { id, ev: 'exit', code, signal };
// { id, ev: 'close', code, signal }. stdin is ignored, or with `input` a pipe that gets it and is closed. When the worker goes (the channel closes),
// this process exits; the programs it started stay with their own process groups, which their callers'
// watchdogs end (activities/watchdog).
//
// A program started with `watch: { lease, staleMs, graceMs }` is supervised here instead of by a watchdog
// shell of its own (activities/watchdog documents the guarantee): its process group is ended (SIGTERM, then
// SIGKILL after graceMs) when its lease file was not renewed for staleMs (a stalled or frozen worker), and
// when the worker goes, before this process exits. One timer checks every watched lease each second: no
// process is started for it. What this process cannot do when it is SIGKILLed itself, the program must do:
// only bubblewrap's `--die-with-parent` sandboxes are started so (activities/script).
//
// Plain JavaScript, no imports beyond node: it starts with every worker and must start fast.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';

if (!process.send) {
  process.stderr.write('spawner: must be started with an IPC channel (activities/spawner.ts does)\n');
  process.exit(2);
}

const send = (m) => {
  // The worker is gone: 'disconnect' ends this process. (Without the callback, a send on a closed channel
  // is an 'error' event, which would end this process before it ended its watched programs.)
  if (!process.connected) return;
  try {
    process.send(m, () => {});
  } catch {
    // closed meanwhile
  }
};

/** Watched programs by request id: { pid, lease, staleMs, graceMs, ending }. */
const watched = new Map();
let watchTimer;

const signalGroup = (pid, signal) => {
  try {
    process.kill(-pid, signal);
  } catch {
    // gone already
  }
};

/** Ends a watched program's group: SIGTERM now, SIGKILL after its grace. */
function endWatched(id, w, why) {
  if (w.ending) return;
  w.ending = true;
  // Into the program's own output, as the watchdog shell said it.
  send({ id, ev: 'stderr', data: Buffer.from(`[watchdog] ${why}: ending process group ${w.pid}\n`) });
  signalGroup(w.pid, 'SIGTERM');
  setTimeout(() => signalGroup(w.pid, 'SIGKILL'), w.graceMs);
}

function checkLeases() {
  const now = Date.now();
  for (const [id, w] of watched) {
    if (w.ending) continue;
    let renewed = 0;
    try {
      renewed = statSync(w.lease).mtimeMs;
    } catch {
      // Removed: nobody renews it any more.
    }
    if (now - renewed > w.staleMs) endWatched(id, w, `lease ${w.lease} is stale`);
  }
}

function watch(id, pid, spec) {
  watched.set(id, { pid, lease: spec.lease, staleMs: spec.staleMs, graceMs: spec.graceMs, ending: false });
  watchTimer ??= setInterval(checkLeases, 1000);
}

function unwatch(id) {
  if (!watched.delete(id) || watched.size > 0) return;
  clearInterval(watchTimer);
  watchTimer = undefined;
}

process.on('message', (req) => {
  const { id } = req;
  let child;
  try {
    child = spawn(req.file, req.args, {
      cwd: req.cwd,
      env: req.env,
      detached: req.detached === true,
      stdio: [req.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
  } catch (err) {
    send({ id, ev: 'error', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  if (req.input !== undefined) {
    // A program that exits without reading all of it closes the pipe: EPIPE is its answer, not ours.
    child.stdin.on('error', () => {});
    child.stdin.end(req.input);
  }
  let started = false;
  child.once('spawn', () => {
    started = true;
    if (req.watch) watch(id, child.pid, req.watch);
    send({ id, ev: 'spawn', pid: child.pid });
  });
  child.once('error', (err) => {
    if (!started) send({ id, ev: 'error', message: err.message });
  });
  child.stdout.on('data', (data) => send({ id, ev: 'stdout', data }));
  child.stderr.on('data', (data) => send({ id, ev: 'stderr', data }));
  child.once('exit', (code, signal) => {
    unwatch(id);
    if (started) send({ id, ev: 'exit', code, signal });
  });
  child.once('close', (code, signal) => {
    if (started) send({ id, ev: 'close', code, signal });
  });
});

// The worker is gone: its watched programs end with it (their groups, SIGKILL after the grace), then this
// process ends. Others are their own watchdogs' business.
process.on('disconnect', () => {
  if (watched.size === 0) process.exit(0);
  let grace = 0;
  for (const [id, w] of watched) {
    endWatched(id, w, 'the worker is gone');
    grace = Math.max(grace, w.graceMs);
  }
  setTimeout(() => {
    for (const w of watched.values()) signalGroup(w.pid, 'SIGKILL');
    process.exit(0);
  }, grace + 50);
});
