#!/usr/bin/env node
// The worker's process starter (activities/spawner.ts): a small Node process that starts programs for the
// worker and reports on them over its IPC channel. Starting a program forks the process that starts it, and
// fork copies the page tables of the whole address space: ~50 ms of the worker's main thread per program
// at 900 MB resident (measured), during which no workflow task or heartbeat moves. Forked from here, ~45 MB,
// it costs a few ms, off the worker's thread.
//
// Requests: { id, file, args, cwd, env, detached, input? }. Answers, in order: { id, ev: 'spawn', pid } or
// { id, ev: 'error', message }; { id, ev: 'stdout' | 'stderr', data }; { id, ev: 'exit', code, signal };
// { id, ev: 'close', code, signal }. stdin is ignored, or with `input` a pipe that gets it and is closed. When the worker goes (the channel closes),
// this process exits; the programs it started stay with their own process groups, which their callers'
// watchdogs end (activities/watchdog).
//
// Plain JavaScript, no imports beyond node: it starts with every worker and must start fast.
import { spawn } from 'node:child_process';

if (!process.send) {
  process.stderr.write('spawner: must be started with an IPC channel (activities/spawner.ts does)\n');
  process.exit(2);
}

const send = (m) => {
  try {
    process.send(m);
  } catch {
    // The worker is gone: 'disconnect' ends this process.
  }
};

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
    send({ id, ev: 'spawn', pid: child.pid });
  });
  child.once('error', (err) => {
    if (!started) send({ id, ev: 'error', message: err.message });
  });
  child.stdout.on('data', (data) => send({ id, ev: 'stdout', data }));
  child.stderr.on('data', (data) => send({ id, ev: 'stderr', data }));
  child.once('exit', (code, signal) => {
    if (started) send({ id, ev: 'exit', code, signal });
  });
  child.once('close', (code, signal) => {
    if (started) send({ id, ev: 'close', code, signal });
  });
});

process.on('disconnect', () => process.exit(0));
