/**
 * `MigrationPolicy`: when a GPU fault should move a range into device memory
 * (the driver's `driver_migration_policy(range)` of the seed's example), as a
 * service with three layers:
 * - `never`: system memory only;
 * - `always`: every range that may migrate (anonymous, not hugetlb) and is not
 *   already in device memory, whenever a pagemap exists;
 * - `xe`: like Xe's `xe_svm_range_needs_migrate_to_vram`: anonymous, not
 *   hugetlb, at least 64 KiB, a pagemap exists, not already there (`scanMm`);
 *   atomics need device memory (`devmemOnly`). The target is the range's
 *   madvise preferred location (`xe_vma_resolve_pagemap`): `system` → stay in
 *   place unless the fault needs VRAM (then the device's own pagemap, as Xe's
 *   `!!dpagemap || ctx.devmem_only`), `device` → the device's own pagemap, a
 *   pagemap id → that pagemap; with migration policy `only-system-pages`,
 *   pages already in another pagemap's memory are left there.
 *
 * @since 0.1.0
 */
import { NOT_NOW, type Now, withNow } from "../domain/Now.ts"
import { Context, Effect, Layer } from "effect"
import { DEFAULT_ATTRS, type MemAttrs } from "../domain/MemAttrs.ts"
import type { Range } from "../domain/Range.ts"
import { type DevicePagemapApi, DevicePagemaps } from "../services/DevicePagemap.ts"
import type { GpuSvmApi } from "../services/GpuSvm.ts"
import { resolvePagemap } from "./Attributes.ts"

/**
 * The fault being handled, as the policy sees it.
 *
 * @category models
 */
export interface FaultKind {
  readonly write: boolean
  readonly atomic: boolean
  /** The fault needs device memory (`ctx.devmem_only`: an atomic that needs VRAM); default false. */
  readonly devmemOnly?: boolean
  /** The madvise attributes of the range's piece of the GPU VA window; default the defaults. */
  readonly attrs?: MemAttrs
}

/**
 * The policy's interface.
 *
 * @category models
 */
export interface MigrationPolicyApi {
  /** Policy name (`never` | `always` | `xe`). */
  readonly name: string
  /** Should ranges be created with `devmemPossible` (a pagemap exists and the policy may migrate)? */
  readonly devmemPossible: boolean
  /** Do atomic faults require device memory (`ctx.devmemOnly`)? */
  readonly atomicNeedsVram: boolean
  /** The pagemap to migrate `range` into for this fault, or undefined to stay in place. */
  readonly target: (svm: GpuSvmApi, range: Range, fault: FaultKind) => Effect.Effect<DevicePagemapApi | undefined>
  /**
   * {@link target} decided in the calling step where it needs no effect (issue #16, `src/domain/Now.ts`),
   * else `NOT_NOW`. Optional: a policy without it sends every fault through the fault loop. The built-in
   * policies attach it non-enumerably (`withNow`), so a policy made by spreading one with its own `target`
   * does not keep a `targetNow` that would bypass that `target`.
   */
  readonly targetNow?: (svm: GpuSvmApi, range: Range, fault: FaultKind) => Now<DevicePagemapApi | undefined>
}

/**
 * The migration policy service.
 *
 * @category services
 */
export class MigrationPolicy extends Context.Service<MigrationPolicy, MigrationPolicyApi>()("gpusvm/MigrationPolicy") {}

/**
 * `never`: system memory only.
 *
 * @category layers
 * @since 0.2.0
 */
export const layerNever: Layer.Layer<MigrationPolicy> = Layer.succeed(
  MigrationPolicy,
  withNow<MigrationPolicyApi>({ name: "never", devmemPossible: false, atomicNeedsVram: false, target: () => Effect.succeed(undefined) }, {
    targetNow: () => undefined
  })
)

const make = (name: "always" | "xe", minBytes: number) =>
  Layer.effect(
    MigrationPolicy,
    Effect.gen(function*() {
      const pagemaps = (yield* Effect.serviceOption(DevicePagemaps)).pipe((o) => (o._tag === "Some" ? o.value.all : []))
      const pm = pagemaps[0]
      return withNow<MigrationPolicyApi>({
        name,
        devmemPossible: pm !== undefined,
        atomicNeedsVram: name === "xe" && pm !== undefined,
        target: (svm: GpuSvmApi, range: Range, fault: FaultKind) => {
          if (pm === undefined || !range.flags.migrateDevmem || range.end - range.start < minBytes) return Effect.succeed(undefined)
          if (name === "always") return Effect.map(svm.scanMm(range, pm.owner), (where) => (where === "equal" ? undefined : pm))
          // xe: xe_vma_resolve_pagemap, then needs_migrate_to_vram(…, !!dpagemap || devmem_only)
          const attrs = fault.attrs ?? DEFAULT_ATTRS
          const target = resolvePagemap(pagemaps, attrs) ?? (fault.devmemOnly === true ? pm : undefined)
          if (target === undefined) return Effect.succeed(undefined)
          return Effect.map(svm.scanMm(range, target.owner), (where) =>
            where === "equal" || (attrs.migrationPolicy === "only-system-pages" && (where === "other" || where === "mixed")) ? undefined : target)
        }
      }, {
        // without a pagemap, or for a range that cannot or need not migrate, nothing to scan: decided now
        targetNow: (_svm: GpuSvmApi, range: Range): Now<DevicePagemapApi | undefined> =>
          pm === undefined || !range.flags.migrateDevmem || range.end - range.start < minBytes ? undefined : NOT_NOW
      })
    })
  )

/**
 * `always`: migrate every migratable range not already in device memory (the
 * machine's first pagemap, read from `DevicePagemaps` if present).
 *
 * @category layers
 * @since 0.2.0
 */
export const layerAlways: Layer.Layer<MigrationPolicy> = make("always", 0)

/**
 * `xe`: like `xe_svm_range_needs_migrate_to_vram`: ranges of at least 64 KiB;
 * atomics need device memory.
 *
 * @category layers
 * @since 0.2.0
 */
export const layerXe: Layer.Layer<MigrationPolicy> = make("xe", 64 * 1024)

/**
 * The names of the built-in policies (scenario files' `policy.migrate`).
 *
 * @category models
 * @since 0.2.0
 */
export type PolicyName = "never" | "always" | "xe"

/**
 * The layer of a built-in policy by name.
 *
 * @category layers
 * @since 0.2.0
 */
export const layerFromName = (name: PolicyName): Layer.Layer<MigrationPolicy> =>
  name === "never" ? layerNever : name === "always" ? layerAlways : layerXe

/**
 * A policy as the one-call stacks take it: a built-in name or any layer
 * providing `MigrationPolicy` (a user's own policy).
 *
 * @category models
 * @since 0.2.0
 */
export type PolicyChoice<E = never, R = never> = PolicyName | Layer.Layer<MigrationPolicy, E, R>

/**
 * The layer of a `PolicyChoice` (a name through `layerFromName`, a layer as it is).
 *
 * @category layers
 * @since 0.2.0
 */
export const layerOf = <E = never, R = never>(choice: PolicyChoice<E, R>): Layer.Layer<MigrationPolicy, E, R> =>
  typeof choice === "string" ? layerFromName(choice) : choice
