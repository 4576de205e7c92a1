// A fast path for the plainest PNGs: 8-bit grayscale or RGB, not interlaced,
// no transparency, colour profile or gamma, at most 256 x 256 pixels. Their
// samples are the pixels, so inflating the data (node:zlib) and undoing the
// row filters gives exactly what sharp's decode gives, without its fixed
// cost of about 0.5 ms an image (a libvips pipeline on libuv's threads),
// which dominates for small images (BENCHMARKS.md). Anything else, and
// anything malformed, returns null: the caller decodes it with sharp, which
// also words the errors.
import * as zlib from 'node:zlib';

export interface PlainPng {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** The largest image the fast path takes: beyond it libvips' C outruns a JavaScript unfilter. */
export const PLAIN_PNG_MAX_PIXELS = 256 * 256;

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// Chunks that do not change the pixels; any other (tRNS, gAMA, iCCP, cHRM,
// sBIT, eXIf, PLTE, ...) leaves the image to sharp.
const HARMLESS = new Set(['tEXt', 'zTXt', 'iTXt', 'pHYs', 'tIME', 'sRGB']);

// zlib.crc32 arrived in Node 20.15 and 22.2; without it the fast path is off.
const crc32 = (zlib as unknown as { crc32?: (data: Uint8Array) => number }).crc32;

/** The pixels of a plain PNG (see above), or null for sharp to decode. Never throws. */
export function decodePlainPng(bytes: Uint8Array, maxPixels = Infinity): PlainPng | null {
  if (crc32 === undefined || bytes.length < 8 + 25 + 12) return null;
  for (let i = 0; i < 8; i++) if (bytes[i] !== SIGNATURE[i]) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0;
  let height = 0;
  let channels: 1 | 3 = 1;
  const idat: Uint8Array[] = [];
  let at = 8;
  let header = false;
  let ended = false;
  let previous = '';
  while (at + 12 <= bytes.length) {
    const length = view.getUint32(at);
    if (length > bytes.length - at - 12) return null;
    const type = String.fromCharCode(bytes[at + 4]!, bytes[at + 5]!, bytes[at + 6]!, bytes[at + 7]!);
    const body = bytes.subarray(at + 8, at + 8 + length);
    if (crc32(bytes.subarray(at + 4, at + 8 + length)) >>> 0 !== view.getUint32(at + 8 + length)) return null;
    at += 12 + length;
    if (!header) {
      // IHDR first: width, height, bit depth 8, colour type 0 (gray) or 2 (RGB), deflate, filter 0, no interlace.
      if (type !== 'IHDR' || length !== 13) return null;
      const b = new DataView(body.buffer, body.byteOffset, 13);
      width = b.getUint32(0);
      height = b.getUint32(4);
      if (width === 0 || height === 0 || width * height > Math.min(PLAIN_PNG_MAX_PIXELS, maxPixels)) return null;
      if (body[8] !== 8 || (body[9] !== 0 && body[9] !== 2) || body[10] !== 0 || body[11] !== 0 || body[12] !== 0) return null;
      channels = body[9] === 0 ? 1 : 3;
      header = true;
    } else if (type === 'IDAT') {
      // The data chunks must follow each other.
      if (idat.length > 0 && previous !== 'IDAT') return null;
      idat.push(body);
    } else if (type === 'IEND') {
      ended = true;
      break;
    } else if (!HARMLESS.has(type)) {
      return null;
    }
    previous = type;
  }
  if (!ended || idat.length === 0) return null;
  const stride = width * channels;
  let raw: Buffer;
  try {
    // Bounded by what the header promises: a stream that inflates to more is not plain.
    raw = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: height * (stride + 1) });
  } catch {
    return null;
  }
  if (raw.length !== height * (stride + 1)) return null;
  const data = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const up = row - stride; // the previous row, already unfiltered; y = 0 reads zeros
    for (let x = 0; x < stride; x++) {
      const left = x >= channels ? data[row + x - channels]! : 0;
      const above = y > 0 ? data[up + x]! : 0;
      let predicted: number;
      switch (filter) {
        case 0: predicted = 0; break;
        case 1: predicted = left; break;
        case 2: predicted = above; break;
        case 3: predicted = (left + above) >> 1; break;
        case 4: {
          const corner = x >= channels && y > 0 ? data[up + x - channels]! : 0;
          const p = left + above - corner;
          const pa = Math.abs(p - left);
          const pb = Math.abs(p - above);
          const pc = Math.abs(p - corner);
          predicted = pa <= pb && pa <= pc ? left : pb <= pc ? above : corner;
          break;
        }
        default: return null;
      }
      data[row + x] = (raw[src + x]! + predicted) & 0xff;
    }
  }
  return { data, width, height, channels };
}
