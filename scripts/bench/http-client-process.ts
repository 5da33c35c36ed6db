// A benchmark's HTTP client in a process of its own (forked with an IPC channel), so that the server's process
// does only the server's work. Each message { path, body } is answered with the milliseconds from sending the
// request to the answer's last byte, measured here; "cpu" with the CPU time this process has used so far.
import { httpPoster } from "./http-post.ts";

const poster = httpPoster(process.argv[2]);

process.on("message", (message: { path: string; body: unknown } | "close" | "cpu") => {
  if (message === "close") {
    poster.close();
    process.disconnect();
    return;
  }
  if (message === "cpu") {
    const { user, system } = process.cpuUsage();
    process.send!({ cpuMs: (user + system) / 1000 });
    return;
  }
  poster.post(message.path, message.body).then(
    (ms) => process.send!({ ms }),
    (error: unknown) => process.send!({ error: (error as Error).message }),
  );
});
