// Typed handles on the install scripts (plain CommonJS under scripts/, which
// ship in the package and run before any TypeScript is built).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir as sweptTmpDir } from '../helpers/tmp-dir';

export const ROOT = path.resolve(__dirname, '..', '..', '..');

export interface TorchBuildInfo {
  version: string;
  variant: string;
  cxx11abi: number | null;
}

export interface BuildIdentity {
  torchRoot: string;
  torchVersion: string;
  torchVariant: string;
  cxx11abi: number | null;
  napi: number;
  platform: string;
  arch: string;
  libc: string;
}

export interface RebuildReason {
  kind: 'missing' | 'identity' | 'sources';
  message: string;
}

export interface PrebuildCandidate {
  file: string;
  identity?: Record<string, unknown>;
  error?: string;
}

interface BuildNative {
  buildIdentity(torchRoot: string, info: TorchBuildInfo, host?: Partial<BuildIdentity>): BuildIdentity;
  rebuildReason(stamp: Partial<BuildIdentity> | null, current: BuildIdentity,
    mtimes: { outputMtime: number | null; newestSourceMtime: number }): RebuildReason | null;
  STAMP_KEYS: string[];
}

interface TorchLocate {
  torchBuildInfo(root: string): TorchBuildInfo;
  locateTorch(options?: { install?: boolean }): { root: string; libDir: string };
}

interface Prebuilds {
  MATCHED_KEYS: string[];
  prebuildFileName(identity: BuildIdentity): string;
  prebuildMismatch(prebuild: Record<string, unknown>, host: BuildIdentity, hostNapi: number): string | null;
  listPrebuilds(prebuildsDir: string, platform: string, arch: string): PrebuildCandidate[];
  choosePrebuild(candidates: PrebuildCandidate[], host: BuildIdentity, hostNapi: number):
    { chosen: PrebuildCandidate | null; rejected: { file: string; reason: string }[] };
  savePrebuild(addon: string, identity: BuildIdentity, prebuildsDir: string): string;
}

/* eslint-disable @typescript-eslint/no-require-imports */
export const buildNative = require(path.join(ROOT, 'scripts', 'build-native.js')) as BuildNative;
export const torchLocate = require(path.join(ROOT, 'scripts', 'torch-locate.js')) as TorchLocate;
export const prebuilds = require(path.join(ROOT, 'scripts', 'prebuilds.js')) as Prebuilds;
/* eslint-enable @typescript-eslint/no-require-imports */

let torch: { root: string; libDir: string } | undefined;

/** The libtorch this project builds against (locating it starts Python: once per file). */
export function projectTorch(): { root: string; libDir: string } {
  return (torch ??= torchLocate.locateTorch({ install: false }));
}

export function tmpDir(prefix = 'extrema-package-'): string {
  return sweptTmpDir(prefix);
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
}
