// One WebSocket at a time for the page: hello first, "connected" on welcome, and after any
// non-terminal close a reconnect with full-jitter backoff (net.js) until `stop()`.
import { afterClose } from "./net.js";

/**
 * hooks: {hello(): frame, onFrame(frame, sent), onState(kind, detail)} where kind is
 * "connecting" | "connected" | "reconnecting" (detail: {retryAtMs}) | "offline"
 * | "closed" (detail: {code}). Frames of a socket that was replaced or dropped are ignored.
 *
 * Commands go through `command()`: kept in `outbox` until the server acks them (or answers
 * with an error naming their id; `sent` is then the command), and sent again with the same
 * id after every reconnect, so a command typed while offline runs once, when back.
 */
export class Connection {
  #ws = null;
  #ready = false;
  #running = false;
  #attempt = 0;
  #timer = 0;

  constructor(url, hooks, outbox, env = globalThis) {
    this.url = url;
    this.hooks = hooks;
    this.outbox = outbox;
    this.env = env; // WebSocket, navigator, setTimeout, clearTimeout, Date
  }

  /** (Re)connect now, from attempt 0; a previous socket is dropped. */
  start() {
    this.stop();
    this.#running = true;
    this.#attempt = 0;
    this.hooks.onState("connecting");
    this.#open();
  }

  stop() {
    this.#running = false;
    this.#drop(1000, "bye");
  }

  /** Drop this socket and reconnect (resuming from the cursor), e.g. after a seq gap. */
  resync() {
    this.#drop(4000, "resync");
    this.#schedule(1000);
  }

  /** Reconnect at once when the browser comes back online. */
  online() {
    if (this.#running && this.#ws === null) {
      this.env.clearTimeout(this.#timer);
      this.hooks.onState("connecting");
      this.#open();
    }
  }

  get ready() {
    return this.#ready;
  }

  /** Keep `frame` until acked and send it now if attached (else on the next welcome);
   * false when the outbox is full and the command was not taken. */
  command(frame) {
    if (!this.outbox.add(frame)) return false;
    if (this.#ready) this.#ws.send(JSON.stringify(frame));
    return true;
  }

  #open() {
    if (!this.env.navigator.onLine) return this.hooks.onState("offline"); // `online()` resumes
    const ws = new this.env.WebSocket(this.url);
    this.#ws = ws;
    ws.onopen = () => ws === this.#ws && ws.send(JSON.stringify(this.hooks.hello()));
    ws.onmessage = (e) => ws === this.#ws && this.#receive(e.data);
    ws.onclose = (e) => ws === this.#ws && this.#closed(e.code);
  }

  #receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // not ours to fix; the log is re-read on the next gap
    }
    let sent;
    if (frame.type === "ack" || (frame.type === "error" && frame.id)) {
      sent = this.outbox.settle(frame.id);
    }
    if (frame.type === "welcome") {
      this.#ready = true;
      this.#attempt = 0;
      this.hooks.onState("connected");
    }
    this.hooks.onFrame(frame, sent);
    if (frame.type === "welcome" && this.#ready) {
      for (const f of this.outbox.pending()) this.#ws.send(JSON.stringify(f));
    }
  }

  #closed(code) {
    this.#ws = null;
    this.#ready = false;
    this.#schedule(code);
  }

  #schedule(code) {
    if (!this.#running) return;
    this.env.clearTimeout(this.#timer);
    const plan = afterClose(code, this.#attempt, this.env.navigator.onLine);
    if (plan.action === "stop") {
      this.#running = false;
      return this.hooks.onState("closed", { code });
    }
    if (plan.action === "offline") return this.hooks.onState("offline");
    this.#attempt += 1;
    this.hooks.onState("reconnecting", { retryAtMs: this.env.Date.now() + plan.delayMs });
    this.#timer = this.env.setTimeout(() => this.#open(), plan.delayMs);
  }

  #drop(code, reason) {
    this.env.clearTimeout(this.#timer);
    const ws = this.#ws;
    this.#ws = null;
    this.#ready = false;
    if (ws) ws.close(code, reason);
  }
}
