/**
 * `KernelAlloc`: the kernel's own memory allocator as GPU SVM uses it for its
 * temporary arrays (`kvmalloc_array` of the pfn array handed to
 * `hmm_range_fault`). Optional: a context without it never fails an allocation
 * (the native machine, most tests). The simulated machine provides it so that
 * an allocation failure can be injected (`Injection.evictPfnAllocFail`), which
 * is what exposes the 6.17 `drm_gpusvm_range_evict` mm-reference leak
 * (kernel-semantics §11.16).
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"

/**
 * Where GPU SVM allocates an array (the kernel function that calls `kvmalloc_array`).
 *
 * @category models
 */
export type AllocSite = "range_evict"

/**
 * The allocator.
 *
 * @category services
 */
export class KernelAlloc extends Context.Service<KernelAlloc, {
  /**
   * `kvmalloc_array(n, sizeof(unsigned long), GFP_KERNEL)` at `site`: true if the
   * allocation succeeded, false for NULL (the caller returns `-ENOMEM`). Never fails.
   */
  readonly kvmallocArray: (site: AllocSite, n: number) => Effect.Effect<boolean>
}>()("gpusvm/KernelAlloc") {}
