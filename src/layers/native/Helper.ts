/**
 * The helper process (`native/helper.c`) and its JSON-lines protocol: spawn,
 * hello, requests with ids, replies, userfaultfd events, death.
 *
 * - Control requests (`ping`, `reg`, `unreg`, `wp`, `copy`, `zero`, `wake`,
 *   `dontneed`, `populate`, `kill`) run on the helper's control thread; their replies
 *   resolve as soon as the line arrives, so they can resolve a fault the
 *   worker thread is blocked in.
 * - Workload requests (`mmap`, `munmap`, `mprotect`, `madvise`, `mremap`,
 *   `mlock`, `munlock`, `rd`, `wr`, `fork`, `forkc`, `exit`) run one at a time on the worker thread. Their replies
 *   and the uffd events go through one ordered inbox that the layer's event
 *   fiber drains: the helper writes a command's events before its reply, so a
 *   reply is delivered only after the invalidations its events raised.
 * - A helper is the process Node spawned (`Helper.spawn`: stdin / stdout
 *   pipes) or a serving fork child of another helper (`Helper.forkOf`, the
 *   `forkc` command: a copy-on-write copy made by fork(2) that listens on the
 *   abstract Unix socket `gpusvm-helper-<pid>`; Node connects, the child
 *   checks Node's pid with SO_PEERCRED). A fork child is its parent helper's
 *   child, not Node's: its parent kills it (`kill`, only a pid it has not
 *   reaped, so never a reused one) and reaps it (a `child` line).
 * - Every request has a wall-clock timeout (a `setTimeout`, independent of the
 *   Effect clock, so a `TestClock` cannot turn it into a hang); on timeout,
 *   exit or a closed stdout every pending request fails with `HelperFailed`.
 *
 * @since 0.1.0
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { connect } from "node:net"
import { constants as osConstants } from "node:os"
import { createInterface } from "node:readline"
import type { Readable, Writable } from "node:stream"
import { Effect, Queue } from "effect"
import { HelperFailed, HelperUnavailable } from "./Errors.ts"

/**
 * The helper's first line.
 *
 * @category models
 */
export interface Hello {
  readonly pid: number
  readonly uffd: number
  readonly uffdMode: string
  readonly uffdErrno: number
  readonly uffdErr: string
  readonly features: number
  readonly fork: number
  /** Address of the worker's rd/wr staging buffer. */
  readonly io: number
  /** Address of the control thread's UFFDIO_COPY source buffer. */
  readonly fill: number
  /** Size of each staging buffer. */
  readonly staging: number
}

/**
 * A reply line.
 *
 * @category models
 */
export interface Reply {
  readonly id: number
  readonly ok: 0 | 1
  readonly errno?: number
  readonly err?: string
  readonly addr?: number
  readonly skipped?: number
}

/**
 * A userfaultfd event line.
 *
 * @category models
 */
export type UffdEvent =
  | { readonly ev: "unmap" | "remove"; readonly start: number; readonly end: number }
  | { readonly ev: "remap"; readonly from: number; readonly to: number; readonly len: number }
  | { readonly ev: "fork"; readonly fd: number }
  | { readonly ev: "pf"; readonly addr: number; readonly flags: number; readonly tid: number }
  | { readonly ev: "other"; readonly code: number }

/**
 * What the event fiber takes from the inbox, in helper output order.
 *
 * @category models
 */
export type InboxItem =
  | { readonly _tag: "Event"; readonly event: UffdEvent }
  | { readonly _tag: "Reply"; readonly deliver: () => void }

/**
 * Where the C source and the binary live (same relative path from `src/` and `dist/`).
 *
 * @category functions
 */
export const nativeDir = fileURLToPath(new URL("../../../native/", import.meta.url))
/**
 * The helper binary.
 *
 * @category functions
 */
export const helperBinary = `${nativeDir}build/gpusvm-helper`
/**
 * The build status file `native/build.mjs` writes.
 *
 * @category functions
 */
export const statusFile = `${nativeDir}build/native-status.json`

const CONTROL = new Set(["ping", "reg", "unreg", "wp", "copy", "zero", "wake", "dontneed", "populate", "kill"])

/**
 * How a `Helper` reaches its process: the command stream, a way to signal it,
 * and its exit (once reaped).
 *
 * @category models
 */
export interface Transport {
  readonly input: Writable
  readonly output: Readable
  /** Sends a signal (best effort; the process may be gone). */
  readonly signal: (signal: NodeJS.Signals) => void
  /** Has the process been reaped? */
  readonly reaped: () => boolean
  /** Resolves once the process has exited and been reaped. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: string | null }>
}

const childTransport = (child: ChildProcess): Transport => ({
  input: child.stdin!,
  output: child.stdout!,
  signal: (sig) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig)
  },
  reaped: () => child.exitCode !== null || child.signalCode !== null,
  exited: new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode })
    else {
      child.once("exit", (code, signal) => resolve({ code, signal }))
      // a process that never started (ENOENT, EACCES) has no exit
      child.once("error", () => {
        if (child.pid === undefined) resolve({ code: null, signal: null })
      })
    }
  })
})

const signalName = (n: number): string | null =>
  n === 0 ? null : ((Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0]) ?? `signal ${n}`)

/**
 * The binary, building it on demand (`node native/build.mjs`, which never
 * fails but records its outcome) when missing. `HelperUnavailable` with the
 * recorded stage and stderr when there is still none.
 *
 * @category functions
 */
export const ensureBinary = (path: string = helperBinary): HelperUnavailable | undefined => {
  if (existsSync(path)) return undefined
  if (path === helperBinary && existsSync(`${nativeDir}build.mjs`)) {
    spawnSync(process.execPath, [`${nativeDir}build.mjs`], { stdio: "ignore", timeout: 120_000 })
    if (existsSync(path)) return undefined
    try {
      const st = JSON.parse(readFileSync(statusFile, "utf8")) as { stage?: string; stderr?: string }
      return new HelperUnavailable({ stage: st.stage ?? "build", stderr: st.stderr ?? "" })
    } catch {
      return new HelperUnavailable({ stage: "build", stderr: "native/build.mjs recorded no status" })
    }
  }
  return new HelperUnavailable({ stage: "missing", stderr: `no helper binary at ${path}` })
}

/**
 * A running helper.
 *
 * @category models
 */
export class Helper {
  readonly transport: Transport
  readonly hello: Hello
  readonly pid: number
  readonly timeoutMs: number
  /** Ordered inbox of events and workload replies (drained by the layer's event fiber). */
  readonly inbox: Queue.Queue<InboxItem>
  /** Deliver workload replies at once and drop events (no event fiber: the probe). */
  direct = false
  /** Set once the process is gone: why. */
  dead: HelperFailed | undefined
  /** Resolves when the process has exited (and been reaped). */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: string | null }>
  /** The helper this one is a fork child of (it kills and reaps this one), if any. */
  readonly parent: Helper | undefined
  private nextId = 1
  private readonly pending = new Map<number, { readonly control: boolean; readonly done: (r: Reply | HelperFailed) => void }>()
  private stderr = ""
  private readonly onDeath: Array<(e: HelperFailed) => void> = []
  /** Fork children by pid: called with their exit once this helper reaped them. */
  private readonly onChildExit = new Map<number, (code: number | null, signal: string | null) => void>()

  private constructor(
    transport: Transport,
    hello: Hello,
    inbox: Queue.Queue<InboxItem>,
    timeoutMs: number,
    rest: ReadonlyArray<string>,
    parent: Helper | undefined
  ) {
    this.transport = transport
    this.hello = hello
    this.pid = hello.pid
    this.inbox = inbox
    this.timeoutMs = timeoutMs
    this.parent = parent
    this.exited = transport.exited
    transport.input.on("error", () => {
      // EPIPE once the helper is gone: reported through `die`
    })
    void transport.exited.then(({ code, signal }) =>
      this.die("died", `helper ${this.pid} exited (${signal ?? `code ${code}`})${this.stderr ? `: ${this.stderr.slice(0, 300)}` : ""}`))
    for (const l of rest) this.onLine(l)
  }

  /**
   * Reads hello from `transport`'s output (`timeoutMs`), checks it names
   * `expectPid` (never drive a process this layer did not start), and builds
   * the helper. The transport is signalled SIGKILL on any failure.
   */
  private static start(
    transport: Transport,
    expectPid: number | undefined,
    timeoutMs: number,
    parent: Helper | undefined,
    stderrOf: () => string
  ): Effect.Effect<Helper, HelperUnavailable> {
    return Effect.flatMap(Queue.unbounded<InboxItem>(), (inbox) =>
      Effect.callback<Helper, HelperUnavailable>((resume) => {
        let settled = false
        const early: Array<string> = []
        const settle = (e: Effect.Effect<Helper, HelperUnavailable>) => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          resume(e)
        }
        const fail = (stage: string, detail: string) => {
          transport.signal("SIGKILL")
          settle(Effect.fail(new HelperUnavailable({ stage, stderr: detail })))
        }
        const timer = setTimeout(() => fail("hello", `no hello within ${timeoutMs} ms`), timeoutMs)
        void transport.exited.then(({ code, signal }) =>
          settle(Effect.fail(new HelperUnavailable({ stage: "spawn", stderr: `exited before hello (${signal ?? code}) ${stderrOf()}` }))))
        const rl = createInterface({ input: transport.output })
        let helper: Helper | undefined
        rl.on("line", (line) => {
          if (helper !== undefined) return helper.onLine(line)
          if (!settled && line.startsWith("{\"hello\"")) {
            try {
              const hello = JSON.parse(line) as Hello
              if (expectPid !== undefined && hello.pid !== expectPid) {
                return fail("hello", `hello names pid ${hello.pid}, started ${expectPid}`)
              }
              helper = new Helper(transport, hello, inbox, timeoutMs, early, parent)
              helper.stderr = stderrOf()
              settle(Effect.succeed(helper))
            } catch (e) {
              fail("hello", `bad hello line: ${String(e)}`)
            }
          } else {
            early.push(line)
          }
        })
        rl.once("close", () => {
          if (helper !== undefined) helper.die("closed", `helper ${helper.pid}: stdout closed`)
        })
      }))
  }

  /**
   * Spawns the helper and waits for its hello line (`timeoutMs`). Fails with
   * `HelperUnavailable` when the binary is missing, does not start or says
   * nothing sensible.
   */
  static spawn(path: string, timeoutMs: number): Effect.Effect<Helper, HelperUnavailable> {
    return Effect.suspend(() => {
      const missing = ensureBinary(path)
      if (missing !== undefined) return Effect.fail(missing)
      let child: ChildProcess
      try {
        child = spawn(path, [], { stdio: ["pipe", "pipe", "pipe"] })
      } catch (e) {
        return Effect.fail(new HelperUnavailable({ stage: "spawn", stderr: String(e) }))
      }
      let stderr = ""
      child.stderr!.on("data", (d: Buffer) => {
        if (stderr.length < 4000) stderr += d.toString()
      })
      child.once("error", (e) => {
        stderr += String(e)
      })
      return Helper.start(childTransport(child), child.pid, timeoutMs, undefined, () => stderr)
    })
  }

  /**
   * `fork(2)` of this helper into a child that keeps serving (the `forkc`
   * workload command, see `native/helper.c`): connects to the child's socket
   * and waits for its hello. The child is this helper's to kill and reap:
   * its transport's `signal` asks this helper (`kill`), its `exited` is this
   * helper's `child` line for it (or this helper's own death: the child got
   * SIGKILL by PR_SET_PDEATHSIG). `HelperFailed` when the fork or the
   * connection fails.
   */
  forkChild(): Effect.Effect<Helper, HelperFailed> {
    return Effect.flatMap(this.request("forkc", []), (r) => {
      if (r.ok !== 1 || r.addr === undefined) {
        return Effect.fail(new HelperFailed({ stage: "fork", detail: `helper ${this.pid}: forkc: ${r.err ?? "no pid"} (errno ${r.errno ?? "?"})` }))
      }
      const pid = r.addr
      const parent = this
      let reaped = false
      const exited = new Promise<{ readonly code: number | null; readonly signal: string | null }>((resolve) => {
        const done = (code: number | null, signal: string | null) => {
          reaped = true
          this.onChildExit.delete(pid)
          resolve({ code, signal })
        }
        this.onChildExit.set(pid, done)
        this.whenDead(() => done(null, "SIGKILL"))
      })
      const socket = connect({ path: `\0gpusvm-helper-${pid}` })
      socket.on("error", () => {
        // a refused or broken connection: the child is killed below or reported through `die`
      })
      const transport: Transport = {
        input: socket,
        output: socket,
        signal: (sig) => {
          if (reaped || parent.dead !== undefined) return
          Effect.runFork(Effect.ignore(parent.request("kill", [pid, osConstants.signals[sig] ?? 9])))
        },
        reaped: () => reaped,
        exited
      }
      return Effect.mapError(
        Helper.start(transport, pid, this.timeoutMs, this, () => ""),
        (e) => new HelperFailed({ stage: "fork", detail: `helper ${this.pid}: fork child ${pid}: ${e.message}` })
      )
    })
  }

  /** Registers a callback for the helper's death (called at most once). */
  whenDead(f: (e: HelperFailed) => void): void {
    if (this.dead !== undefined) f(this.dead)
    else this.onDeath.push(f)
  }

  private die(stage: "died" | "closed", detail: string): void {
    if (this.dead !== undefined) return
    const err = new HelperFailed({ stage, detail })
    this.dead = err
    const all = [...this.pending.values()]
    this.pending.clear()
    for (const p of all) p.done(err)
    for (const f of this.onDeath.splice(0)) f(err)
  }

  private onLine(line: string): void {
    let msg: unknown
    try {
      msg = JSON.parse(line)
    } catch {
      return
    }
    if (typeof msg !== "object" || msg === null) return
    if ("ev" in msg) {
      const m = msg as { ev: string; pid?: number; code?: number; signal?: number }
      if (m.ev === "child") {
        this.onChildExit.get(m.pid ?? -1)?.(m.code !== undefined && m.code >= 0 ? m.code : null, signalName(m.signal ?? 0))
        return
      }
      if (this.direct) return
      Queue.offerUnsafe(this.inbox, { _tag: "Event", event: msg as UffdEvent })
      return
    }
    if ("id" in msg) {
      const r = msg as Reply
      const p = this.pending.get(r.id)
      if (p === undefined) return
      this.pending.delete(r.id)
      if (p.control || this.direct) p.done(r)
      else Queue.offerUnsafe(this.inbox, { _tag: "Reply", deliver: () => p.done(r) })
    }
  }

  /**
   * Sends `cmd args…` and waits for its reply (an errno reply is a `Reply`
   * with `ok: 0`, not a failure). `HelperFailed` if the helper is gone or the
   * reply takes longer than the timeout.
   */
  request(cmd: string, args: ReadonlyArray<number>, timeoutMs: number = this.timeoutMs): Effect.Effect<Reply, HelperFailed> {
    return Effect.callback<Reply, HelperFailed>((resume) => {
      if (this.dead !== undefined) return resume(Effect.fail(this.dead))
      const id = this.nextId++
      let settled = false
      const timer = setTimeout(() => {
        if (settled) return
        settled = true
        this.pending.delete(id)
        resume(Effect.fail(new HelperFailed({ stage: "timeout", detail: `helper ${this.pid}: no reply to "${cmd}" within ${timeoutMs} ms` })))
      }, timeoutMs)
      this.pending.set(id, {
        control: CONTROL.has(cmd),
        done: (r) => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          resume(r instanceof HelperFailed ? Effect.fail(r) : Effect.succeed(r))
        }
      })
      this.transport.input.write(`${id} ${cmd} ${args.join(" ")}\n`)
      return Effect.sync(() => {
        settled = true
        clearTimeout(timer)
        this.pending.delete(id)
      })
    })
  }

  /**
   * Kills the process (default SIGKILL; a fork child through its parent) and waits for it to be reaped (at most
   * `waitMs`). The wait's timer is cleared as soon as the process is reaped and
   * never keeps Node alive by itself (unref), so a CLI run ends as soon as its
   * work is done, not `waitMs` later.
   */
  kill(signal: NodeJS.Signals = "SIGKILL", waitMs = 5_000): Promise<void> {
    if (!this.transport.reaped()) {
      try {
        this.transport.signal(signal)
      } catch {
        // already gone
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined
    const waited = new Promise<void>((r) => {
      timer = setTimeout(r, waitMs)
      timer.unref()
    })
    return Promise.race([this.exited.then(() => undefined), waited]).finally(() => clearTimeout(timer))
  }
}
