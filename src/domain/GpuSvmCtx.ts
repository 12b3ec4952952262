/**
 * `struct drm_gpusvm_ctx`: per-call options of the GPU SVM API.
 *
 * @since 0.1.0
 */

/**
 * Per-call options:
 * - `checkPagesThreshold`: a candidate chunk of at most this many bytes is only
 *   used if all its CPU pages are present (kernel-semantics §3.7); 0 = off.
 * - `timesliceMs`: migration timeslice (device memory stays at least this long).
 * - `inNotifier`: the caller is the invalidate callback and holds the notifier lock for writing.
 * - `readOnly`: the fault only reads (no WRITE fault, `to-device` DMA).
 * - `devmemPossible`: the range may be migrated to device memory.
 * - `devmemOnly`: every page must be in device memory (system pages are `EFAULT`).
 * - `allowMixed`: system pages plus one device pagemap in one range are accepted.
 *
 * @category models
 */
export interface GpuSvmCtx {
  readonly checkPagesThreshold: number
  readonly timesliceMs: number
  readonly inNotifier: boolean
  readonly readOnly: boolean
  readonly devmemPossible: boolean
  readonly devmemOnly: boolean
  readonly allowMixed: boolean
}

/**
 * The all-defaults ctx (`struct drm_gpusvm_ctx ctx = {}`).
 *
 * @category constants
 */
export const DEFAULT_CTX: GpuSvmCtx = {
  checkPagesThreshold: 0,
  timesliceMs: 0,
  inNotifier: false,
  readOnly: false,
  devmemPossible: false,
  devmemOnly: false,
  allowMixed: false
}

/**
 * Builds a ctx from partial options over the defaults.
 *
 * @category functions
 */
export const make = (options?: Partial<GpuSvmCtx>): GpuSvmCtx =>
  options === undefined ? DEFAULT_CTX : { ...DEFAULT_CTX, ...options }
