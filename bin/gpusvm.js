#!/usr/bin/env node
// The `gpusvm` command: runs the compiled CLI (built into dist/ by `npm install`'s prepare step).
import("../dist/cli/main.js").catch((error) => {
  console.error("gpusvm: could not load dist/cli/main.js (run `npm install` or `npm run build`):", error?.message ?? error)
  process.exit(2)
})
