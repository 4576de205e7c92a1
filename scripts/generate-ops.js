'use strict';
// Generates one typed function per ATen operator overload, from the schemas
// the built addon reports at run time, into two modules:
//   lib/tensor/ops.generated.ts           public operators (`et.aten`)
//   lib/tensor/ops.internal.generated.ts  `_`-prefixed internal operators
// Internal operators skip the argument checks their public wrappers do
// (`_stack([])` or `_foreach_copy` on lists of different lengths crash
// libtorch), so they are never exported from the package; lib/ code that
// needs one imports the internal module and passes consistent arguments.
//   npm run generate:ops      (--out-dir DIR writes both files there instead)
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const native = require('node-gyp-build')(ROOT);

const SKIP_NAME = /(_backward|_out$|^_?sparse|_sparse|^_?mkldnn|^miopen|^cudnn|^_cudnn|^fbgemm|^_fbgemm|quantize|^q_|^_nested|nested_|^_?mps|^_test|^_cufft|^_cslt|^_?vulkan|^_?xnnpack|^to_padded|^_thnn|^_nnpack|^_fused_moving|_jvp$|^_?batch_norm_impl|^_functional|^lift|^_?to_sparse|^_coalesce|^_?indices|^_?values$|^_?dimV|^_?dimI|^_?nnz|^ccol_|^crow_|^row_indices|^col_indices|^_?mkl|^_efficient_attention|^_flash_attention|^_cudnn_attention|^_triton|_symint$|^_assert|^sym_|^_local_scalar|^_pin_memory|^_?conj_physical_|^_propagate|^_has_|^_is_|^_?segment_reduce|^_?histogramdd|^_?spdiags|^_?foobar|^_?debug|^_?dirichlet|^_?sample_|^_?standard_gamma|^_?make_dep|^_?make_per|^_?chunk_cat|^_?weight_int|^_?weight_norm_interface|^_?mixed_dtypes|^_?rowwise|^_?scaled_mm|^_?scaled_grouped|^_?grouped_mm|^_?int_mm|^_?convert_weight|^_?dyn_quant|^_?wrapped|^_?transformer|^_?native_multi|^_?masked_softmax|^_?nested|^_?print|^_?lazy|^_?functionalize|^_?unsafe_|^_?autocast_to|^_?pack_padded|^_?pad_packed|^_?ctc_loss|^_?embedding_bag|^_?rnn|^_?lstm|^_?gru|^_?quantized|^_?fake_quant|^_?fused_sdp_choice|^_?validate|^_?version|^_?cummax_helper|^_?cummin_helper|^_?fw_primal|^_?make_dual|^_?unpack_dual|^_?new_zeros_with_same)/;
const SKIP_OVERLOAD = /(^out$|_out$|Dimname|names|^dimname|^names_)/;
const RESERVED = new Set(('break case catch class const continue debugger default delete do else enum export extends false finally for function if ' +
  'import in instanceof new null return super switch this throw true try typeof var void while with yield let static implements interface ' +
  'package private protected public await arguments eval').split(' '));

function ident(name) {
  return RESERVED.has(name) ? `${name}_arg` : name;
}

// schema type -> { ts, conv(expr, argName, opName) } or null if unsupported
function mapType(type, size) {
  const opt = /^Optional\[(.*)\]$/.exec(type);
  if (opt) {
    const inner = mapType(opt[1], size);
    if (!inner) return null;
    return { ts: `${inner.ts} | null`, conv: inner.optConv || inner.conv, optional: true };
  }
  switch (type) {
    case 'Tensor': return { ts: 'Tensor', conv: (e, a, o) => `$t(${e}, '${a}', '${o}')`, optConv: (e, a, o) => `$ot(${e}, '${a}', '${o}')` };
    case 'List[Tensor]': return { ts: 'readonly Tensor[]', conv: (e, a, o) => `$tl(${e}, '${a}', '${o}')` };
    case 'List[Optional[Tensor]]': return { ts: 'readonly (Tensor | null)[]', conv: (e, a, o) => `$otl(${e}, '${a}', '${o}')` };
    case 'int': return { ts: 'number', conv: (e) => e };
    case 'float': return { ts: 'number', conv: (e) => e };
    case 'bool': return { ts: 'boolean', conv: (e) => e };
    case 'number': return { ts: 'Scalar', conv: (e) => e };
    case 'str': return { ts: 'string', conv: (e) => e };
    case 'List[int]': return { ts: size ? 'readonly number[] | number' : 'readonly number[]', conv: (e) => e };
    case 'List[float]': return { ts: 'readonly number[]', conv: (e) => e };
    case 'List[bool]': return { ts: 'readonly boolean[]', conv: (e) => e };
    case 'List[number]': return { ts: 'readonly Scalar[]', conv: (e) => e };
    case 'ScalarType': return { ts: 'DType', conv: (e, a) => `$dt(${e}, '${a}')` };
    case 'MemoryFormat': return { ts: 'MemoryFormat', conv: (e, a) => `$mf(${e}, '${a}')` };
    case 'Layout': return { ts: 'number', conv: (e) => e };
    case 'Device': return { ts: 'Device', conv: (e, a) => `$dv(${e}, '${a}')` };
    case 'Generator': return { ts: 'Generator', conv: (e) => `$gn(${e})` };
    default: return null;
  }
}

function mapReturns(returns, args) {
  if (returns.length === 0) return { ts: 'void', wrap: (e) => `${e};` };
  const parts = [];
  for (const r of returns) {
    if (r.type === 'Tensor') {
      if (r.mutable) {
        // returned object is the mutated argument
        const target = args.find((a) => a.mutable && a.type === 'Tensor');
        if (!target) return null;
        parts.push({ ts: 'Tensor', wrap: () => `$M(${ident(target.name)})`, mutated: true });
      } else {
        parts.push({ ts: 'Tensor', wrap: (e) => `$T(${e})` });
      }
    } else if (r.type === 'List[Tensor]') {
      if (r.mutable) return null;
      parts.push({ ts: 'Tensor[]', wrap: (e) => `$Ts(${e})` });
    } else if (r.type === 'int' || r.type === 'float' || r.type === 'number') {
      parts.push({ ts: 'number', wrap: (e) => `${e} as number` });
    } else if (r.type === 'bool') {
      parts.push({ ts: 'boolean', wrap: (e) => `${e} as boolean` });
    } else if (r.type === 'ScalarType') {
      parts.push({ ts: 'number', wrap: (e) => `${e} as number` });
    } else {
      return null;
    }
  }
  if (parts.length === 1) {
    const p = parts[0];
    if (p.mutated) return { ts: p.ts, wrap: (e) => `${e};\n  return ${p.wrap()};` };
    return { ts: p.ts, wrap: (e) => `return ${p.wrap(e)};` };
  }
  const ts = `[${parts.map((p) => p.ts).join(', ')}]`;
  return {
    ts,
    wrap: (e) => `const $r = ${e} as unknown[];\n  return [${parts.map((p, i) => (p.mutated ? p.wrap() : p.wrap(`$r[${i}]`))).join(', ')}];`,
  };
}

function fnName(op) {
  const base = op.name.slice('aten::'.length);
  const name = op.overload ? `${base}_${op.overload}` : base;
  return RESERVED.has(name) ? `${name}_op` : name;
}

// `__and__` and friends are Python's operator methods, public like `add`.
function isInternal(base) {
  return base.startsWith('_') && !base.startsWith('__');
}

function header(torch, count, skipped, what) {
  return [
    '// GENERATED by scripts/generate-ops.js from the operator schemas libtorch',
    `// ${torch} reports at run time. Do not edit; run \`npm run generate:ops\`.`,
    `// ${count} ${what} (skipped ${skipped}: out= variants, backends, internals, unsupported types).`,
  ];
}

const IMPORTS = [
  '/* eslint-disable */',
  "import type { Tensor } from './tensor';",
  "import type { DType } from './dtype';",
  "import type { Device } from './device';",
  "import type { Generator } from '../runtime/generator';",
  "import { call as $call, op as $op, t as $t, ot as $ot, tl as $tl, otl as $otl, dt as $dt, mf as $mf, dv as $dv, gn as $gn, T as $T, Ts as $Ts, M as $M, type Scalar, type MemoryFormat } from './op-runtime';",
  '',
];

// keeps unused-import checks quiet for helpers a given torch may not need
const TRAILER = "void [$t, $ot, $tl, $otl, $dt, $mf, $dv, $gn, $T, $Ts, $M];\nexport type { Scalar, MemoryFormat, DType, Device, Generator };\n";

function generate() {
  const ops = native
    .listOps()
    .filter((o) => o.name.startsWith('aten::'))
    .sort((a, b) => (a.name + '.' + a.overload < b.name + '.' + b.overload ? -1 : 1));
  const publicLines = [];
  const internalLines = [];
  let internalCount = 0;
  const names = new Set();
  let slot = 0;
  let skipped = 0;
  for (const o of ops) {
    const base = o.name.slice('aten::'.length);
    if (SKIP_NAME.test(base) || SKIP_OVERLOAD.test(o.overload)) { skipped++; continue; }
    // out= variants write into a kwarg-only mutable tensor; JS uses the functional form
    if (o.arguments.some((a) => a.mutable && a.kwargOnly)) { skipped++; continue; }
    const params = [];
    let ok = true;
    for (const a of o.arguments) {
      const m = mapType(a.type, a.size);
      if (!m) { ok = false; break; }
      params.push({ a, m, omittable: a.default !== undefined || !!m.optional && a.default !== undefined });
    }
    if (!ok) { skipped++; continue; }
    const ret = mapReturns(o.returns, o.arguments);
    if (!ret) { skipped++; continue; }
    const name = fnName(o);
    if (names.has(name)) { skipped++; continue; }
    names.add(name);
    const full = o.name + (o.overload ? `.${o.overload}` : '');
    // a parameter may be left out only if every later one may be too
    let trailingOptional = true;
    const decl = new Array(params.length);
    for (let i = params.length - 1; i >= 0; i--) {
      const p = params[i];
      const canOmit = p.a.default !== undefined;
      trailingOptional = trailingOptional && canOmit;
      decl[i] = `${ident(p.a.name)}${trailingOptional ? '?' : ''}: ${p.m.ts}`;
    }
    const args = params.map((p) => p.m.conv(ident(p.a.name), p.a.name, full)).join(', ');
    // slots number the operators of both modules in one sequence: they index
    // one lookup cache in op-runtime.ts
    const callExpr = `$call($op(${slot}, '${o.name}', '${o.overload}')${args ? ', ' + args : ''})`;
    slot++;
    const internal = isInternal(base);
    if (internal) internalCount++;
    const lines = internal ? internalLines : publicLines;
    lines.push(`/** \`${o.schema.replace(/\*\//g, '* /')}\` */`);
    lines.push(`export function ${name}(${decl.join(', ')}): ${ret.ts} {`);
    lines.push(`  ${ret.wrap(callExpr)}`);
    lines.push('}');
    lines.push('');
  }
  const torch = native.versions().torch;
  const publicText = header(torch, slot - internalCount, skipped, 'public operator overloads')
    .concat(IMPORTS, publicLines).join('\n') + TRAILER;
  const internalText = header(torch, internalCount, skipped, 'internal operator overloads')
    .concat([
      '// No argument validation: libtorch may crash the process on inconsistent',
      '// input (list lengths, sizes). For lib/ code only; not exported as et.aten.',
    ], IMPORTS, internalLines).join('\n') + TRAILER;
  const dirIndex = process.argv.indexOf('--out-dir');
  const dir = dirIndex > 0 ? process.argv[dirIndex + 1] : path.join(ROOT, 'lib', 'tensor');
  fs.writeFileSync(path.join(dir, 'ops.generated.ts'), publicText);
  fs.writeFileSync(path.join(dir, 'ops.internal.generated.ts'), internalText);
  console.log(`wrote ${slot - internalCount} public and ${internalCount} internal operators (${skipped} skipped)`);
}

generate();
