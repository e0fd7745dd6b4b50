// Getting a reply: over the WebSocket when it opens, else over Server-Sent
// Events. Both call the same handlers: onToken(text), onError(message),
// onDone({conversation_id, stopped}), onLost() when the connection drops mid-reply.
import { errorFrom } from "./api.js";

const SOCKET_OPEN_TIMEOUT_MS = 4000;

export class SocketChat {
  constructor() {
    this.socket = null;
    this.handlers = null;
  }

  // Resolve once a socket is open; reject if it cannot open.
  connect() {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      return Promise.resolve();
    }
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/api/ws/chat`);
    this.socket = socket;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error("timeout"));
      }, SOCKET_OPEN_TIMEOUT_MS);
      socket.addEventListener("open", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.addEventListener("close", () => {
        clearTimeout(timer);
        reject(new Error("closed"));
        this.closed(socket);
      });
      socket.addEventListener("message", (event) => this.receive(event));
    });
  }

  closed(socket) {
    if (this.socket === socket) this.socket = null;
    const handlers = this.handlers;
    this.handlers = null;
    if (handlers) handlers.onLost();
  }

  receive(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    const handlers = this.handlers;
    if (!handlers) return;
    if (frame.type === "token") {
      handlers.onToken(frame.content);
    } else if (frame.type === "error") {
      handlers.onError(frame.content);
    } else if (frame.type === "done") {
      this.handlers = null;
      handlers.onDone(frame);
    }
  }

  async send(question, conversationId, handlers) {
    await this.connect();
    this.handlers = handlers;
    const frame = { question };
    if (conversationId) frame.conversation_id = conversationId;
    this.socket.send(JSON.stringify(frame));
  }

  stop() {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "stop" }));
    }
  }

  // Forget the reply in progress, e.g. when it ended with an error frame.
  release() {
    this.handlers = null;
  }
}

// One event of a text/event-stream: its name and its data lines joined.
function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    if (field === "data") data.push(value);
  }
  return data.length ? { name, data: data.join("\n") } : null;
}

export class StreamChat {
  constructor() {
    this.controller = null;
    this.stopped = false;
  }

  async send(question, conversationId, handlers) {
    this.controller = new AbortController();
    this.stopped = false;
    const body = { question };
    if (conversationId) body.conversation_id = conversationId;
    let response;
    try {
      response = await fetch("/api/stream", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: this.controller.signal,
      });
    } catch {
      handlers.onLost();
      return;
    }
    if (!response.ok) {
      handlers.onError((await errorFrom(response)).message);
      return;
    }
    await this.read(response, handlers);
  }

  async read(response, handlers) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const event = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (!event) continue;
          if (event.name === "done") {
            handlers.onDone({ ...JSON.parse(event.data), stopped: false });
            return;
          }
          if (event.name === "error") {
            handlers.onError(JSON.parse(event.data).error);
            return;
          }
          handlers.onToken(event.data);
        }
      }
      handlers.onLost();
    } catch {
      // Stopping aborts the fetch; the server keeps what was written.
      if (this.stopped) handlers.onDone({ stopped: true });
      else handlers.onLost();
    }
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  release() {}
}
