/**
 * The synchronous fast path's "not now" answer (issue #16).
 *
 * Several service operations have an optional `…Now` twin: the same operation,
 * decided and done inside the calling fiber's current step, for the common
 * case where the Effect version would neither wait (a contended lock, an
 * invalidation in flight), nor pass a schedule yield point (a seeded schedule
 * or the explorer is installed), nor fail. When any of these would happen the
 * twin returns {@link NOT_NOW} *before changing anything the Effect version
 * would not change the same way when called next* (the caller then calls the
 * Effect version, which does the whole operation with its yield points and
 * typed errors). A machine that cannot answer synchronously (the native one)
 * leaves the twins out. Without a schedule no other fiber can run inside one
 * step, so a twin's result is a result the Effect version could have given.
 *
 * @since 0.5.0
 */

/**
 * "Not now: call the Effect version."
 *
 * @category constants
 * @since 0.5.0
 */
export const NOT_NOW: unique symbol = Symbol.for("gpusvm/NotNow")

/**
 * The answer of a `…Now` twin: the value, or {@link NOT_NOW}.
 *
 * @category models
 * @since 0.5.0
 */
export type Now<A> = A | typeof NOT_NOW

/**
 * Attaches `twins` (the `…Now` members of a service object) to `svc` as non-enumerable properties and
 * returns `svc`. Why non-enumerable: a wrapper built by spreading the service (`{ ...gpu, bind: … }`, as
 * `GpuSvmTest`'s `wrap` option and user tests do) does not copy them, so a wrapped service has no fast
 * path and its wrapper sees every call; only the unwrapped service answers synchronously.
 *
 * @category constructors
 * @since 0.5.0
 */
export const withNow = <S extends object>(svc: S, twins: Partial<S>): S => {
  for (const [k, v] of Object.entries(twins)) Object.defineProperty(svc, k, { value: v, enumerable: false, writable: false, configurable: false })
  return svc
}
