// Tensors as raw bytes, for the file formats in lib/io: they hold elements as
// little-endian bytes, which is the host order on every platform libtorch
// builds for here, so bytes cross unchanged. A big-endian host is refused
// rather than silently reading byte-swapped values.
import { endianness } from 'node:os';
import { native } from '../native';
import { assertDType, describe, dtypeCode, type DType } from './dtype';
import { Tensor, type Shape } from './tensor';

function assertLittleEndianHost(): void {
  if (endianness() !== 'LE') throw new Error('Reading and writing raw tensor bytes needs a little-endian host');
}

/**
 * A new contiguous CPU tensor of `dtype` and `shape` holding a copy of
 * `bytes` (little-endian elements in row-major order). The byte count must
 * be exactly numel x the dtype's element size.
 */
export function fromBytes(bytes: ArrayBufferView, shape: Shape, dtype: DType): Tensor {
  assertLittleEndianHost();
  if (!ArrayBuffer.isView(bytes) || bytes instanceof DataView) {
    throw new TypeError(`Expected a TypedArray or Buffer for "bytes" but received ${describe(bytes)}`);
  }
  return Tensor._wrap(native.fromBuffer(bytes, shape as number[], dtypeCode(assertDType(dtype, '"dtype"'))));
}

/**
 * A copy of the elements of `t` as little-endian bytes in row-major order
 * (copied to the CPU and made contiguous first when needed). The result
 * views the whole of a fresh ArrayBuffer, so `.buffer` may be used directly.
 */
export function toBytes(t: Tensor): Uint8Array {
  assertLittleEndianHost();
  if (!(t instanceof Tensor)) throw new TypeError(`Expected a Tensor for "t" but received ${describe(t)}`);
  return new Uint8Array(native.toBuffer(t.id));
}
