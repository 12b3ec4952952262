/**
 * Field Schemas shared by the step families of a scenario (`scenarios.md`):
 * non-empty names (buffers, barriers, error tags).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * Schema of a non-empty string; `what` names it in the message
 * (`expected a non-empty buffer name`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const NonEmpty = (what: string) =>
  Schema.String.check(Schema.makeFilter((s: string) => s.length > 0 || `expected a non-empty ${what}`))

/**
 * Schema of a buffer name: the `as` that creates a buffer, the `buf` that refers to it.
 *
 * @category schemas
 * @since 0.1.0
 */
export const BufferName = NonEmpty("buffer name")

/**
 * `vm` of a GPU step (kernel-semantics §11.17, several GPU SVMs per process):
 * the GPU VM of the thread's process the step uses (default the thread's VM,
 * else the process's first).
 *
 * @category schemas
 * @since 0.4.0
 */
export const VmName = NonEmpty("VM name")

/**
 * The name of a process of a scenario (`processes[].name`, `fork.as`, `wait.process`).
 *
 * @category schemas
 * @since 0.4.0
 */
export const ProcessName = NonEmpty("process name")

/**
 * The `vm` field GPU steps take ({@link VmName}).
 *
 * @category schemas
 * @since 0.4.0
 */
export const vmField = { vm: Schema.optionalKey(VmName) }
