/**
 * `gpusvm igt …` (issue #17 part 4): the IGT `xe_exec_system_allocator`
 * subtests by name, from the table of src/igt/Subtests.ts.
 *
 * - `gpusvm igt list [--filter GLOB]`: one subtest name per line, in IGT's
 *   order (`--list-subtests` order); `--filter` keeps the names the shell-style
 *   glob matches (`*`, `?`, `[…]`). Exit 0; a filter that matches nothing is
 *   bad input (one line on stderr, exit 2).
 *
 * Nothing is run here: the subtests are not yet scenarios (docs/igt.md).
 *
 * @since 0.3.0
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { matching } from "../igt/Subtests.ts"

/** `gpusvm igt list`. */
const list = Command.make(
  "list",
  {
    filter: Flag.String("filter").pipe(
      Flag.withMetavar("GLOB"),
      Flag.withDescription("Only the subtests whose name matches this glob (* ? [...]), e.g. 'once-*'"),
      Flag.optional
    )
  },
  Effect.fnUntraced(function*({ filter }) {
    const glob = Option.getOrUndefined(filter)
    const names = matching(glob).map((t) => t.name)
    if (names.length === 0) {
      yield* Console.error(`gpusvm: igt list: no subtest matches "${glob}"`)
      return yield* Effect.sync(() => {
        process.exitCode = 2
      })
    }
    yield* Console.log(names.join("\n"))
  })
).pipe(Command.withDescription("List the IGT xe_exec_system_allocator subtests, one name per line, in IGT's order"))

/**
 * `gpusvm igt`: the IGT `xe_exec_system_allocator` subtests (`list`).
 *
 * @category commands
 * @since 0.3.0
 */
export const igt = Command.make("igt").pipe(
  Command.withDescription("The IGT xe_exec_system_allocator subtests by name (see docs/igt.md)"),
  Command.withSubcommands([list])
)
