// The process's default group, as torch.distributed keeps one:
// init() joins it (from torchrun's environment or explicit options),
// group() returns it, destroy() leaves it.
import { ProcessGroup, type InitOptions } from '../runtime/process-group';

let current: ProcessGroup | null = null;

/** Joins the default group; an error if this process already has one. */
export async function init(options: InitOptions = {}): Promise<ProcessGroup> {
  if (current !== null) throw new Error(`This process already belongs to a group (rank ${current.rank} of ${current.size}); call destroy() first`);
  current = await ProcessGroup.init(options);
  return current;
}

/** The default group, or null before init() and after destroy(). */
export function group(): ProcessGroup | null {
  return current;
}

/** Leaves the default group (nothing to do without one). */
export function destroy(): void {
  current?.destroy();
  current = null;
}
