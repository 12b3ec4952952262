/**
 * Helpers for the simulated-machine tests: service accessors and a fresh
 * machine per test.
 */
import { Effect, Layer } from "effect"
import { Cpu } from "../../../src/services/Cpu.ts"
import { Dma } from "../../../src/services/Dma.ts"
import { Hmm } from "../../../src/services/Hmm.ts"
import { Machine } from "../../../src/services/Machine.ts"
import { Mm } from "../../../src/services/Mm.ts"
import { MmuNotifier } from "../../../src/services/MmuNotifier.ts"
import { layerWithState, SimState, type SimulatedOptions, type SimulatedServices } from "../../../src/layers/simulated/Simulated.ts"

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

/** All services of a fresh machine, in one object. */
export const services = Effect.gen(function*() {
  return {
    cpu: yield* Cpu,
    mm: yield* Mm,
    mn: yield* MmuNotifier,
    hmm: yield* Hmm,
    dma: yield* Dma,
    machine: yield* Machine,
    st: yield* SimState
  }
})

/** Runs `e` on a fresh machine. */
export const onMachine = <A, E>(
  e: Effect.Effect<A, E, SimulatedServices | SimState>,
  options: SimulatedOptions = {}
): Effect.Effect<A, E> => Effect.provide(e, Layer.fresh(layerWithState(options)))

/** A pattern buffer. */
export const pattern = (n: number, seed: number): Uint8Array => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (seed + i * 7) % 251
  return b
}
