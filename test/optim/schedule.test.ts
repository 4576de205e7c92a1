// Schedules against their hand formulas.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('scaledLr is base * batch / reference', () => {
  assert.equal(et.scaledLr(1.5e-4, 4096), 1.5e-4 * 16);
  assert.equal(et.scaledLr(1e-3, 128, 512), 2.5e-4);
  assert.throws(() => et.scaledLr(1e-3, 0), /Expected a positive finite number for "batchSize" of scaledLr but received number 0/);
  assert.throws(() => et.scaledLr(NaN, 256), /Expected a non-negative finite number for "base" of scaledLr but received number NaN/);
});

test('warmupCosine: linear warmup from 0, half cosine to final, flat after', () => {
  const o = { base: 1e-3, warmupSteps: 10, totalSteps: 110, final: 1e-5 };
  assert.equal(et.warmupCosine(0, o), 0);
  assert.equal(et.warmupCosine(-3, o), 0);
  close(et.warmupCosine(5, o), 5e-4, 'mid warmup');
  close(et.warmupCosine(2.5, o), 2.5e-4, 'fractional step');
  close(et.warmupCosine(10, o), 1e-3, 'peak');
  for (const s of [10, 23.5, 60, 97, 110]) {
    const want = 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + Math.cos((Math.PI * (s - 10)) / 100));
    close(et.warmupCosine(s, o), want, `step ${s}`);
  }
  close(et.warmupCosine(60, o), (1e-3 + 1e-5) / 2, 'half way');
  close(et.warmupCosine(110, o), 1e-5, 'end');
  close(et.warmupCosine(500, o), 1e-5, 'past the end');
  close(et.warmupCosine(0, { base: 2, warmupSteps: 0, totalSteps: 4 }), 2, 'no warmup starts at base');
  close(et.warmupCosine(2, { base: 2, warmupSteps: 0, totalSteps: 4 }), 1, 'default final 0');
  assert.throws(() => et.warmupCosine(1, { base: 1, warmupSteps: 10, totalSteps: 10 }), /"warmupSteps" \(10\) to be less than "totalSteps" \(10\)/);
  assert.throws(() => et.warmupCosine(1, { base: -1, warmupSteps: 1, totalSteps: 10 }), /non-negative finite number for "base" of warmupCosine but received number -1/);
  assert.throws(() => et.warmupCosine(Infinity, { base: 1, warmupSteps: 1, totalSteps: 10 }), /finite number for "step"/);
  assert.throws(() => et.warmupCosine(1, null as unknown as et.optim.WarmupCosineOptions), /Expected options/);
});

test('cosine goes from start to end (rising or falling), clamped outside [0, total]', () => {
  close(et.cosine(0, 100, 0.04, 0.4), 0.04, 'start');
  close(et.cosine(50, 100, 0.04, 0.4), 0.22, 'middle');
  close(et.cosine(25, 100, 0.04, 0.4), 0.4 + (0.04 - 0.4) * 0.5 * (1 + Math.cos(Math.PI / 4)), 'quarter');
  close(et.cosine(100, 100, 0.04, 0.4), 0.4, 'end');
  close(et.cosine(150, 100, 0.04, 0.4), 0.4, 'after');
  close(et.cosine(-1, 100, 1, 0), 1, 'before');
  assert.throws(() => et.cosine(1, 0, 1, 0), /positive finite number for "totalSteps" of cosine but received number 0/);
});
