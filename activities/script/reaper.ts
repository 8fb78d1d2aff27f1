/**
 * Inside bubblewrap a script agent runs in a pid namespace of its own: when its main process exits, the
 * namespace's init exits and the kernel ends every process left in it, before the worker could see or
 * name them. So the script runs under this small POSIX-sh reaper inside the sandbox, which waits for the
 * main process only, then ends what is left in the namespace (everything but init and itself) and says
 * which processes it ended in the agent's output. It keeps the script's exit status.
 */

/** The line the reaper (and the worker, without a sandbox) writes when it ends leftovers. */
export const LEFTOVER_PREFIX = '[orchestrator] ended';

/**
 * The reaper. The glob over /proc is expanded once, before the command substitutions of the loop run,
 * so the reaper's own helper subshells are never in the list. It sweeps only when its parent is pid 1,
 * i.e. bubblewrap's init in the namespace it made: run anywhere else (a sandbox without `--unshare-pid`,
 * a mistaken call), /proc would list the host's processes, and a sweep there would kill them all.
 */
const REAPER_SH = `
if [ "$PPID" != 1 ]; then
  echo "orchestrator-reaper: not alone in a pid namespace (parent $PPID, not 1); running without the sweep" >&2
  exec "$@"
fi
"$@" &
c=$!
trap 'kill -TERM "$c" 2>/dev/null' TERM INT HUP
while :; do
  wait "$c"; code=$?
  kill -0 "$c" 2>/dev/null || break
done
n=0 left=
for d in /proc/[0-9]*; do
  p=\${d#/proc/}
  if [ "$p" = 1 ] || [ "$p" = "$$" ]; then continue; fi
  cmd=$(tr '\\0' ' ' <"$d/cmdline" 2>/dev/null)
  [ -n "$cmd" ] || continue
  if kill -KILL "$p" 2>/dev/null; then
    n=$((n + 1)); left="$left\${left:+; }$p \${cmd% }"
  fi
done
[ "$n" -gt 0 ] && echo "${LEFTOVER_PREFIX} $n background process(es) left by the script: $left." >&2
exit "$code"
`;

/** The argv that runs `argv` under the reaper; only for a program alone in its own pid namespace. */
export function reapedCommand(argv: readonly [string, ...string[]]): [string, ...string[]] {
  return ['sh', '-c', REAPER_SH, 'orchestrator-reaper', ...argv];
}
