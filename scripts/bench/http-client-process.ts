// A benchmark's HTTP client in a process of its own (forked with an IPC channel), so that the server's process
// does only the server's work. Each message { path, body } is answered with the milliseconds from sending the
// request to the answer's last byte, measured here.
import { httpPoster } from "./http-post.ts";

const poster = httpPoster(process.argv[2]);

process.on("message", (message: { path: string; body: unknown } | "close") => {
  if (message === "close") {
    poster.close();
    process.disconnect();
    return;
  }
  poster.post(message.path, message.body).then(
    (ms) => process.send!({ ms }),
    (error: unknown) => process.send!({ error: (error as Error).message }),
  );
});
