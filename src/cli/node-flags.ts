/**
 * The Node flags the gateway runs with: `npm start`, the `dockward` bin's shebang, the systemd
 * unit and the container image pass them (test/unit/node-flags.test.ts and the deploy tests
 * check that they agree), and the bench and the e2e harness start the gateway with them.
 *
 * `--max-semi-space-size=4`: V8 grows the young generation to 2 x 16 MiB under load and keeps
 * it. A proxy's garbage dies young (a request's context, the views of a read), so 2 x 4 MiB
 * collects it as well. Measured with the bench (issue 7): 30-40 MiB less RSS after the load
 * phases (about 90 against 125 MiB) and no measurable change in CPU per ping or per GB moved.
 * V8 reads the flag when the process starts: it cannot be set from the program.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
