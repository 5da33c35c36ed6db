// Waiting for Ctrl-C (SIGINT) or SIGTERM, for commands that run until stopped.

/** Resolves on the first SIGINT or SIGTERM, then stops listening (a later signal gets Node's default). */
export function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off("SIGINT", done);
      process.off("SIGTERM", done);
      resolve();
    };
    process.on("SIGINT", done);
    process.on("SIGTERM", done);
  });
}
