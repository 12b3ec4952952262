/**
 * The interpreter of the buffer-object and GPU VM bind steps (`bo-create`,
 * `bo-bind`, `bo-unbind`, `bo-destroy`, `bo-mmap`, `vm-unbind`, `vm-bind`;
 * kernel-semantics §11.17, IGT `bo-unmap`, `busy`, `evict-malloc-mix-bo`)
 * over the step's VM's driver (`Driver.bo`, `programs/BufferObjects.ts`). BO
 * names are per process (`ProcessEnv.bos`), each bound to the VM that created it.
 *
 * @since 0.4.0
 */
import { Effect } from "effect"
import { type BadAddress, type Busy, InvalidArgument, type OutOfMemory } from "../../domain/Errors.ts"
import type { BoStep } from "../../domain/scenario/Step.ts"
import { type Interpreter, type RunEnv, windowOf } from "./RunEnv.ts"
import { UnknownBuffer } from "./StepError.ts"

/**
 * The errors of a BO step: the driver's (`InvalidArgument`, `Busy` for a busy
 * mirror unbind, `OutOfMemory` / `BadAddress` from the pagemap) or an unknown
 * buffer / BO name (`UnknownBuffer`).
 *
 * @category models
 * @since 0.4.0
 */
export type BoStepError = InvalidArgument | Busy | OutOfMemory | BadAddress | UnknownBuffer

/** The id of BO `name` in `env`'s process (created by this VM), or `UnknownBuffer`. */
const boId = (env: RunEnv, name: string): Effect.Effect<number, UnknownBuffer> => {
  const b = env.process.bos.get(name)
  return b === undefined || b.vm !== env.vm.name ? Effect.fail(new UnknownBuffer({ buf: name })) : Effect.succeed(b.id)
}

/** The window of a `vm-bind` / `vm-unbind` step: a buffer's, or the whole GPU VA window of the driver. */
const mirrorWindow = (env: RunEnv, step: Extract<BoStep, { readonly op: "vm-bind" | "vm-unbind" }>) => {
  if (step.buf === undefined) return Effect.succeed([env.driver.options.gpuvaStart, env.driver.options.gpuvaEnd] as const)
  const w = windowOf(env, step.buf, step.offset, step.length)
  return w instanceof UnknownBuffer ? Effect.fail(w) : Effect.succeed([w.addr, w.addr + w.length] as const)
}

/**
 * Runs one BO / bind step.
 *
 * @category interpreters
 * @since 0.4.0
 */
export const run: Interpreter<BoStep, BoStepError> = (env, step) => {
  const bo = env.driver.bo
  switch (step.op) {
    case "bo-create":
      return Effect.map(bo.create(step.length), (id) => {
        env.process.bos.set(step.as, { vm: env.vm.name, id })
      })
    case "bo-bind": {
      const w = windowOf(env, step.buf, step.offset, undefined)
      if (w instanceof UnknownBuffer) return Effect.fail(w)
      return Effect.flatMap(boId(env, step.bo), (id) => bo.bind(id, w.addr))
    }
    case "bo-unbind":
      return Effect.flatMap(boId(env, step.bo), (id) => bo.unbind(id))
    case "bo-destroy":
      return Effect.flatMap(boId(env, step.bo), (id) =>
        Effect.andThen(bo.destroy(id), Effect.sync(() => {
          env.process.bos.delete(step.bo)
        })))
    case "bo-mmap": {
      // xe_bo_map_fixed (kernel-semantics §11.17): the process maps the BO's device memory at the window
      const w = windowOf(env, step.buf, step.offset, undefined)
      if (w instanceof UnknownBuffer) return Effect.fail(w)
      return Effect.flatMap(boId(env, step.bo), (id) =>
        Effect.flatMap(bo.memory(id), (mem) =>
          mem.bytes > w.length
            ? Effect.fail(new InvalidArgument({ reason: `bo-mmap: the ${mem.bytes}-byte buffer object does not fit in buffer ${JSON.stringify(step.buf)} at offset ${w.offset}`, addr: w.addr }))
            : Effect.asVoid(env.process.cpu.mmap({ addr: w.addr, length: mem.bytes, fixed: true, shared: true, kind: "special", bo: mem }))))
    }
    case "vm-unbind":
      return Effect.flatMap(mirrorWindow(env, step), ([s, e]) => bo.unbindMirror(s, e))
    case "vm-bind":
      return Effect.flatMap(mirrorWindow(env, step), ([s, e]) => bo.bindMirror(s, e))
  }
}
