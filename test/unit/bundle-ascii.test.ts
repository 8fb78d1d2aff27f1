/**
 * The prebuilt workflow bundle is written in ASCII (scripts/build-lib.mjs asciiOnly), so V8 holds it one
 * byte a character. The escapes must mean exactly what the characters meant, wherever they stand.
 */
import { describe, expect, it } from 'vitest';
import { asciiOnly } from '../../scripts/build-lib.mjs';

/** Evaluates a JavaScript expression given as source. */
function evaluate(source: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the test is about source text itself
  const run = new Function(`return (${source});`) as () => unknown;
  return run();
}

const SOURCES = [
  `"a — b → c … ≥ 2 ✖"`,
  `'single – quoted'`,
  '`template ${1 + 1} · ${"ø"}`',
  `"an identity escape \\— of a dash"`,
  `"a real backslash \\\\— before a dash"`,
  `"astral 😀 and BMP ×"`,
  `/[–—]/.test("—")`,
  `/\\—/.test("—")`,
  `/😀/u.test("😀")`,
  `/^[^→]+$/u.test("a→b")`,
  `(() => { /* a comment — with a dash */ return 1; })()`,
];

describe('asciiOnly', () => {
  it.each(SOURCES)('%s means the same once escaped, and is ASCII', (source) => {
    const escaped = asciiOnly(source);
    expect([...escaped].every((c) => c.charCodeAt(0) < 0x80)).toBe(true);
    expect(evaluate(escaped)).toEqual(evaluate(source));
  });

  it('leaves ASCII as it is', () => {
    const source = 'const x = "plain" + `t${1}` + /re\\d/.source; // comment';
    expect(asciiOnly(source)).toBe(source);
  });
});
