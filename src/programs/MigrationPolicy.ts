/**
 * `MigrationPolicy`: when a GPU fault should move a range into device memory
 * (the driver's `driver_migration_policy(range)` of the seed's example), as a
 * service with three layers:
 * - `never`: system memory only;
 * - `always`: every range that may migrate (anonymous, not hugetlb) and is not
 *   already in device memory, whenever a pagemap exists;
 * - `xe`: like Xe's `xe_svm_range_needs_migrate_to_vram`: anonymous, not
 *   hugetlb, at least 64 KiB, a pagemap exists, not already there (`scanMm`);
 *   atomics need device memory (`devmemOnly`).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import type { Range } from "../domain/Range.ts"
import { type DevicePagemapApi, DevicePagemaps } from "../services/DevicePagemap.ts"
import type { GpuSvmApi } from "../services/GpuSvm.ts"

/** The fault being handled, as the policy sees it. */
export interface FaultKind {
  readonly write: boolean
  readonly atomic: boolean
}

/** The policy's interface. */
export interface MigrationPolicyApi {
  /** Policy name (`never` | `always` | `xe`). */
  readonly name: string
  /** Should ranges be created with `devmemPossible` (a pagemap exists and the policy may migrate)? */
  readonly devmemPossible: boolean
  /** Do atomic faults require device memory (`ctx.devmemOnly`)? */
  readonly atomicNeedsVram: boolean
  /** The pagemap to migrate `range` into for this fault, or undefined to stay in place. */
  readonly target: (svm: GpuSvmApi, range: Range, fault: FaultKind) => Effect.Effect<DevicePagemapApi | undefined>
}

/** The migration policy service. */
export class MigrationPolicy extends Context.Service<MigrationPolicy, MigrationPolicyApi>()("gpusvm/MigrationPolicy") {}

/** Never migrate. */
export const never: Layer.Layer<MigrationPolicy> = Layer.succeed(MigrationPolicy, {
  name: "never",
  devmemPossible: false,
  atomicNeedsVram: false,
  target: () => Effect.succeed(undefined)
})

const make = (name: "always" | "xe", minBytes: number) =>
  Layer.effect(
    MigrationPolicy,
    Effect.gen(function*() {
      const pagemaps = (yield* Effect.serviceOption(DevicePagemaps)).pipe((o) => (o._tag === "Some" ? o.value.all : []))
      const pm = pagemaps[0]
      return {
        name,
        devmemPossible: pm !== undefined,
        atomicNeedsVram: name === "xe" && pm !== undefined,
        target: (svm: GpuSvmApi, range: Range, _fault: FaultKind) => {
          if (pm === undefined || !range.flags.migrateDevmem || range.end - range.start < minBytes) return Effect.succeed(undefined)
          return Effect.map(svm.scanMm(range, pm.owner), (where) => (where === "equal" ? undefined : pm))
        }
      } satisfies MigrationPolicyApi
    })
  )

/** Migrate every migratable range not already in device memory. */
export const always: Layer.Layer<MigrationPolicy> = make("always", 0)

/** Xe-like: ranges of at least 64 KiB; atomics need device memory. */
export const xe: Layer.Layer<MigrationPolicy> = make("xe", 64 * 1024)

/** The layer for a policy name (scenario files' `policy.migrate`). */
export const fromName = (name: "never" | "always" | "xe"): Layer.Layer<MigrationPolicy> =>
  name === "never" ? never : name === "always" ? always : xe
