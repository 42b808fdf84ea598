// The server's event stream, read through fetch so that the token travels in a header, never in a
// URL. It reconnects by itself, sending Last-Event-ID so that the server replays what was missed,
// and treats a silent connection (no keepalive for 45 s) or the browser going offline as a drop.

const SILENT_MS = 45_000;  // the server sends a keepalive every 15 s
const FIRST_RETRY_MS = 1000;
const LAST_RETRY_MS = 15_000;

export class EventStream {
  /**
   * handlers: token() → string; opened(resumed) → Promise, called on each connection before its
   * events are read (resumed: the server replays from the last event seen); event(kind, data);
   * down(); heard(); unauthorized().
   */
  constructor(url, handlers) {
    this.url = url;
    this.on = handlers;
    this.lastEventId = null;
    this.running = false;
    this.controller = null;
    this.wake = null;
    this.heardAt = 0;
    this.watchdog = null;
    this.goneOffline = () => this.drop();
    this.backOnline = () => this.retryNow();
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.watchdog = setInterval(() => {
      if (this.controller && Date.now() - this.heardAt > SILENT_MS) this.drop();
    }, 5000);
    window.addEventListener("offline", this.goneOffline);
    window.addEventListener("online", this.backOnline);
    this.loop();
  }

  stop() {
    this.running = false;
    this.lastEventId = null;  // the next login reads everything afresh
    clearInterval(this.watchdog);
    window.removeEventListener("offline", this.goneOffline);
    window.removeEventListener("online", this.backOnline);
    this.drop();
    this.retryNow();
  }

  /** End the current connection (it will be made again). */
  drop() {
    if (this.controller) this.controller.abort();
  }

  retryNow() {
    if (this.wake) this.wake();
  }

  heard() {
    this.heardAt = Date.now();
    this.on.heard();
  }

  async loop() {
    let delay = FIRST_RETRY_MS;
    while (this.running) {
      const controller = new AbortController();
      this.controller = controller;
      try {
        const headers = { Authorization: `Bearer ${this.on.token()}`, Accept: "text/event-stream" };
        if (this.lastEventId !== null) headers["Last-Event-ID"] = String(this.lastEventId);
        if (navigator.onLine === false) throw new Error("offline");
        const response = await fetch(this.url, { headers, signal: controller.signal, cache: "no-store" });
        if (response.status === 401) {
          this.running = false;
          this.on.unauthorized();
          return;
        }
        if (!response.ok) throw new Error(`stream: ${response.status}`);
        this.heard();
        await this.on.opened(this.lastEventId !== null);
        delay = FIRST_RETRY_MS;
        await this.read(response.body);
      } catch {
        // a drop, a refusal or an abort: all end in a retry below
      }
      this.controller = null;
      if (!this.running) return;
      this.on.down();
      await new Promise((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, delay);
      });
      this.wake = null;
      delay = Math.min(delay * 2, LAST_RETRY_MS);
    }
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      this.heard();
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  dispatch(block) {
    let kind = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;  // a comment: keepalive
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (name === "event") kind = value;
      else if (name === "data") data.push(value);
      else if (name === "id") id = value;
    }
    if (id !== null && /^\d+$/.test(id)) this.lastEventId = Number(id);
    if (!data.length) return;
    let payload;
    try {
      payload = JSON.parse(data.join("\n"));
    } catch {
      return;  // not ours to show
    }
    this.on.event(kind, payload);
  }
}
