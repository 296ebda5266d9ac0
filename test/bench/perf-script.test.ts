import { describe, expect, it } from 'vitest';
import { parsePerfScript } from '../../bench/lib/perf-script.js';

describe('parsePerfScript', () => {
  it('reads right-aligned short ids (leading spaces) as well as long ones', () => {
    const text = [
      ' 4406/4406  ',
      '\t         15e6df9 Builtins_CreateTypedArray (/usr/bin/node)',
      '\t    7f471659591a JS:* file:///x/dist/host/fleet/peer-transport.js:50:27 (/tmp/perf-4406.map)',
      '',
      '4407/4411',
      '\t    ffffffff8a0c1d2e pvm_irq_enable ([kernel.kallsyms])',
      '',
      '123456/123460 ',
      '\t    7f0 uv__read (/usr/bin/node)',
    ].join('\n');
    const s = parsePerfScript(text);
    expect(s.map((x) => [x.pid, x.tid, x.frames.length])).toEqual([
      ['4406', '4406', 2],
      ['4407', '4411', 1],
      ['123456', '123460', 1],
    ]);
    expect(s[0]!.frames[1]).toEqual({ sym: 'JS:* file:///x/dist/host/fleet/peer-transport.js:50:27', dso: '/tmp/perf-4406.map' });
    expect(s[1]!.frames[0]).toEqual({ sym: 'pvm_irq_enable', dso: '[kernel.kallsyms]' });
  });

  it('keeps a symbol with parentheses and skips lines that are neither', () => {
    const s = parsePerfScript(['99/99', '\t  abc operator()(int) const (/lib/x.so)', 'garbage line', '\t  zz not a frame'].join('\n'));
    expect(s).toHaveLength(1);
    expect(s[0]!.frames).toEqual([{ sym: 'operator()(int) const', dso: '/lib/x.so' }]);
  });
});
