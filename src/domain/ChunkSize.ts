/**
 * The chunk-size decision of `drm_gpusvm_range_find_or_insert`
 * (`drm_gpusvm_range_chunk_size`, kernel-semantics §3 step 7), as a pure function.
 *
 * Walk the chunk sizes from largest to smallest; the first size whose aligned
 * window `[ALIGN_DOWN(addr, size), ALIGN(addr + 1, size))` lies inside the VMA,
 * the notifier and the GPU VA window is a candidate. A candidate larger than
 * 4 KiB is skipped (the walk continues with the next smaller size) if it
 * overlaps an existing range, or if its size is at most the check-pages
 * threshold and not every CPU page in it is present. No size fits: `undefined`
 * (the caller's `EINVAL`).
 *
 * Pure; the two predicates are supplied by the caller (who holds the locks the
 * kernel holds: the driver SVM lock and the mmap read lock).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { alignDown, alignUp, PAGE_SIZE } from "./Address.ts"

/**
 * Inputs of the decision. All windows are `[start, end)`.
 *
 * @category models
 */
export interface ChunkSizeInput {
  readonly faultAddr: number
  readonly vmaStart: number
  readonly vmaEnd: number
  readonly notifierStart: number
  readonly notifierEnd: number
  readonly gpuvaStart: number
  readonly gpuvaEnd: number
  /** Descending powers of two ending in 4096 (`gpusvm->chunk_sizes`). */
  readonly chunkSizes: ReadonlyArray<number>
  /** `ctx.check_pages_threshold` (0 = never check). */
  readonly checkPagesThreshold: number
  /** `drm_gpusvm_range_find(notifier, start, end)`: does any existing range overlap `[start, end)`? */
  readonly overlapsRange: (start: number, end: number) => boolean
  /** `drm_gpusvm_check_pages`: is every CPU page of `[start, end)` present (walked without faulting)? */
  readonly allPagesPresent: (start: number, end: number) => boolean
}

/**
 * The chosen window.
 *
 * @category models
 */
export interface ChunkWindow {
  readonly start: number
  readonly end: number
}

/**
 * The aligned window of one chunk size around the fault address, if it lies
 * inside the VMA, the notifier and the GPU VA window (the bounds test of the
 * kernel's loop); `undefined` otherwise.
 *
 * @category functions
 */
export const candidate = (input: Omit<ChunkSizeInput, "overlapsRange" | "allPagesPresent">, size: number): ChunkWindow | undefined => {
  const start = alignDown(input.faultAddr, size)
  const end = alignUp(input.faultAddr + 1, size)
  if (
    start < input.vmaStart || end > input.vmaEnd ||
    start < input.notifierStart || end > input.notifierEnd ||
    start < input.gpuvaStart || end > input.gpuvaEnd
  ) return undefined
  return { start, end }
}

/**
 * Does a candidate of this size need the present-pages check (`end - start <= check_pages_threshold`, never for 4 KiB)?
 *
 * @category functions
 */
export const needsPagesCheck = (size: number, checkPagesThreshold: number): boolean =>
  size !== PAGE_SIZE && size <= checkPagesThreshold

/**
 * `drm_gpusvm_range_chunk_size`: the window of the new range, or `undefined` when
 * no chunk size fits (`LONG_MAX` in C, `EINVAL` to the caller).
 *
 * @category functions
 */
export const select = (input: ChunkSizeInput): ChunkWindow | undefined => {
  for (const size of input.chunkSizes) {
    const w = candidate(input, size)
    if (w === undefined) continue
    if (size !== PAGE_SIZE && input.overlapsRange(w.start, w.end)) continue
    if (needsPagesCheck(size, input.checkPagesThreshold) && !input.allPagesPresent(w.start, w.end)) continue
    return w
  }
  return undefined
}

/**
 * The same decision with an effectful present-pages check (the GPU SVM core
 * walks the CPU page table through HMM, which is an effect). Same clauses, same
 * order as `select`; the check runs only for the candidates the kernel checks.
 *
 * @category functions
 */
export const selectEffect = <E, R>(
  input: Omit<ChunkSizeInput, "allPagesPresent">,
  allPagesPresent: (start: number, end: number) => Effect.Effect<boolean, E, R>
): Effect.Effect<ChunkWindow | undefined, E, R> => Effect.suspend(() => selectNow(input, allPagesPresent))

/**
 * {@link selectEffect} with its synchronous part run now: the window as an `Exit` when no
 * `allPagesPresent` check is needed (no further Effect step), else the effect of the checks. For a caller
 * about to run it whose `input` is a snapshot (issue #16).
 *
 * @category functions
 */
export const selectNow = <E, R>(
  input: Omit<ChunkSizeInput, "allPagesPresent">,
  allPagesPresent: (start: number, end: number) => Effect.Effect<boolean, E, R>
): Effect.Effect<ChunkWindow | undefined, E, R> => {
  const sizes = input.chunkSizes
  const loop = (i: number): Effect.Effect<ChunkWindow | undefined, E, R> => {
    for (; i < sizes.length; i++) {
      const size = sizes[i]!
      const w = candidate(input, size)
      if (w === undefined) continue
      if (size !== PAGE_SIZE && input.overlapsRange(w.start, w.end)) continue
      if (needsPagesCheck(size, input.checkPagesThreshold)) {
        const next = i + 1
        return Effect.flatMap(allPagesPresent(w.start, w.end), (ok) => (ok ? Effect.succeed(w) : loop(next)))
      }
      return Effect.succeed(w)
    }
    return Effect.succeed(undefined)
  }
  return loop(0)
}
