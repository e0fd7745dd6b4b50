// The chat workspace: conversations on the left, the open one on the right.
import { api, describe } from "./api.js";
import { SocketChat, StreamChat } from "./chat.js";
import { renderMarkdown } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_TITLE = "New conversation";
const NARROW = window.matchMedia("(max-width: 768px)");
const PENCIL = "M4 20h4L19 9l-4-4L4 16v4z";
const BIN = "M5 7h14M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3";
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  conversations: [],
  currentId: null,
  reply: null, // the exchange being streamed: {view, text, frame}
  transport: new SocketChat(),
  fellBack: false,
};

// Anything the server says 401 to means the session is gone.
function signedOut(error) {
  if (error.status === 401) {
    window.location.assign("/login");
    return true;
  }
  return false;
}

// The banner: errors that belong to no one message, with an optional retry.
function showBanner(message, retry = null) {
  $("banner-text").textContent = message;
  const button = $("banner-retry");
  button.hidden = !retry;
  button.onclick = retry
    ? () => {
        hideBanner();
        retry();
      }
    : null;
  $("banner").hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

function fail(error, retry = null) {
  if (!signedOut(error)) showBanner(describe(error), retry);
}

// The account

function initials(name) {
  const parts = name.trim().split(/[\s@.]+/).filter(Boolean);
  return (parts[0]?.[0] || "?").toUpperCase() + (parts[1]?.[0] || "").toUpperCase();
}

async function loadAccount() {
  const user = await api("/api/auth/me");
  const name = user.full_name || user.email;
  $("user-name").textContent = name;
  $("user-email").textContent = user.full_name ? user.email : "";
  // TODO: the avatar is the user's initials, never their Google or GitHub
  // picture, because the page CSP loads no image from another origin.
  $("avatar").textContent = initials(name);
}

async function signOut() {
  try {
    await api("/auth/sign-out", { method: "POST" });
  } catch (error) {
    fail(error);
    return;
  }
  window.location.assign("/login");
}

// The conversation list

async function loadConversations() {
  state.conversations = await api("/api/conversations");
  renderList();
}

function renderList() {
  const list = $("conversation-list");
  list.replaceChildren(...state.conversations.map(listItem));
  applyFilter();
}

function listItem(conversation) {
  const item = document.createElement("li");
  item.className = "conversation";
  item.dataset.id = conversation.id;

  const link = document.createElement("a");
  link.className = "conversation-link";
  link.href = `#${conversation.id}`;
  link.textContent = conversation.title;
  if (conversation.id === state.currentId) link.setAttribute("aria-current", "page");
  link.addEventListener("click", (event) => {
    event.preventDefault();
    openConversation(conversation.id);
  });
  link.addEventListener("keydown", (event) => {
    if (event.key === "F2") startRename(item, conversation);
    if (event.key === "Delete") confirmDelete(conversation);
  });

  const rename = iconButton("rename", `Rename “${conversation.title}”`, PENCIL);
  rename.addEventListener("click", () => startRename(item, conversation));
  const remove = iconButton("delete", `Delete “${conversation.title}”`, BIN);
  remove.addEventListener("click", () => confirmDelete(conversation));

  item.append(link, rename, remove);
  return item;
}

function iconButton(kind, label, path) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `icon-button small ${kind}`;
  button.setAttribute("aria-label", label);
  button.title = label;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "15");
  svg.setAttribute("height", "15");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS(SVG_NS, "path");
  const stroke = { fill: "none", stroke: "currentColor", "stroke-width": "1.8" };
  for (const [name, value] of Object.entries({ d: path, ...stroke })) {
    line.setAttribute(name, value);
  }
  line.setAttribute("stroke-linecap", "round");
  line.setAttribute("stroke-linejoin", "round");
  svg.append(line);
  button.append(svg);
  return button;
}

function applyFilter() {
  const query = $("filter").value.trim().toLowerCase();
  let shown = 0;
  for (const item of $("conversation-list").children) {
    const title = state.conversations.find((c) => c.id === item.dataset.id)?.title || "";
    const match = title.toLowerCase().includes(query);
    item.hidden = !match;
    if (match) shown += 1;
  }
  const note = $("list-note");
  note.hidden = shown > 0;
  note.textContent = state.conversations.length
    ? "No conversation matches."
    : "No conversations yet.";
}

function startRename(item, conversation) {
  const link = item.querySelector(".conversation-link");
  const input = document.createElement("input");
  input.className = "rename-input";
  input.value = conversation.title;
  input.maxLength = 200;
  input.setAttribute("aria-label", "New title");
  link.replaceWith(input);
  input.focus();
  input.select();

  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (save && title && title !== conversation.title) {
      try {
        const path = `/api/conversations/${conversation.id}`;
        await api(path, { method: "PATCH", body: { title } });
        conversation.title = title;
        if (conversation.id === state.currentId) setTitle(title);
      } catch (error) {
        fail(error);
      }
    }
    renderList();
    // Keyboard users stay where they were: on the renamed conversation.
    const list = $("conversation-list");
    list.querySelector(`[data-id="${conversation.id}"] .conversation-link`)?.focus();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
}

function confirmDelete(conversation) {
  const dialog = $("confirm-delete");
  $("confirm-text").textContent =
    `“${conversation.title}” and all its messages will be deleted.`;
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "delete") return;
    try {
      await api(`/api/conversations/${conversation.id}`, { method: "DELETE" });
    } catch (error) {
      fail(error);
      return;
    }
    state.conversations = state.conversations.filter((c) => c.id !== conversation.id);
    if (conversation.id === state.currentId) showConversation(null, []);
    renderList();
  };
  dialog.showModal();
}

// The open conversation

function setTitle(title) {
  $("conversation-title").textContent = title;
  document.title = `${title} · Privia`;
}

function showConversation(conversation, messages) {
  state.currentId = conversation ? conversation.id : null;
  history.replaceState(null, "", conversation ? `#${conversation.id}` : "/app");
  setTitle(conversation ? conversation.title : DEFAULT_TITLE);
  const box = $("messages");
  box.querySelectorAll(".message").forEach((node) => node.remove());
  for (const message of messages) box.append(messageView(message.role, message.content).node);
  $("empty-state").hidden = messages.length > 0;
  for (const link of document.querySelectorAll(".conversation-link")) {
    const current = link.closest("li").dataset.id === state.currentId;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  box.scrollTop = box.scrollHeight;
}

async function openConversation(id) {
  if (state.reply) return; // One reply at a time; Stop comes first.
  closeDrawer();
  try {
    const conversation = await api(`/api/conversations/${encodeURIComponent(id)}`);
    hideBanner();
    showConversation(conversation, conversation.messages);
  } catch (error) {
    if (error.status === 404) showConversation(null, []);
    else fail(error, () => openConversation(id));
  }
  $("composer-input").focus();
}

async function newChat() {
  if (state.reply) return;
  closeDrawer();
  try {
    const conversation = await api("/api/conversations", { method: "POST", body: {} });
    hideBanner();
    if (!state.conversations.some((c) => c.id === conversation.id)) {
      state.conversations.unshift({ ...conversation, message_count: 0 });
    }
    renderList();
    showConversation(conversation, []);
  } catch (error) {
    fail(error);
  }
  $("composer-input").focus();
}

// Messages

function messageView(role, text) {
  const node = document.createElement("article");
  node.className = `message ${role}`;
  const label = document.createElement("h3");
  label.className = "visually-hidden";
  label.textContent = role === "user" ? "You said" : "Privia replied";
  const body = document.createElement("div");
  body.className = "message-body";
  const note = document.createElement("p");
  note.className = "message-note";
  note.hidden = true;
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy button ghost small";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", role === "user" ? "Copy your message" : "Copy the reply");
  node.append(label, body, note, copy);

  const view = { node, body, note, role, text };
  copy.addEventListener("click", () => copyText(view, copy));
  render(view, text);
  return view;
}

function render(view, text) {
  view.text = text;
  if (view.role === "user") view.body.textContent = text;
  else view.body.innerHTML = renderMarkdown(text);
}

async function copyText(view, button) {
  try {
    await navigator.clipboard.writeText(view.text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

function markNote(view, text, kind) {
  view.note.textContent = text;
  view.note.className = `message-note ${kind}`;
  view.note.hidden = false;
  view.node.classList.add(kind);
}

// Sending and streaming

function setStreaming(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
  $("messages").setAttribute("aria-busy", on ? "true" : "false");
  if (on) $("stop").focus();
  else updateSend();
}

function updateSend() {
  $("send").disabled = !$("composer-input").value.trim() || Boolean(state.reply);
}

async function send() {
  const input = $("composer-input");
  const question = input.value;
  if (!question.trim() || state.reply) return;
  input.value = "";
  autosize();
  hideBanner();

  const box = $("messages");
  $("empty-state").hidden = true;
  box.append(messageView("user", question).node);
  const view = messageView("assistant", "");
  view.node.classList.add("streaming");
  box.append(view.node);
  box.scrollTop = box.scrollHeight;

  const reply = { view, text: "", frame: 0, listed: false };
  state.reply = reply;
  setStreaming(true);

  const handlers = {
    onToken: (text) => {
      // A first question has just made its conversation: list it now.
      if (!reply.listed && !state.currentId) refreshAfterReply();
      reply.listed = true;
      reply.text += text;
      // Render at most once a frame however fast the chunks come.
      if (!reply.frame) {
        reply.frame = requestAnimationFrame(() => {
          reply.frame = 0;
          const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
          render(view, reply.text);
          if (atBottom) box.scrollTop = box.scrollHeight;
        });
      }
    },
    onDone: (frame) => {
      if (frame.stopped) markNote(view, "Stopped", "stopped");
      finish(reply, frame.conversation_id);
    },
    onError: (message) => {
      markNote(view, message, "error");
      state.transport.release();
      finish(reply, null);
    },
    onLost: () => {
      markNote(view, "The connection was lost before the reply finished.", "error");
      finish(reply, null);
      showBanner("Connection lost. What was written so far is kept.", reconnect);
    },
  };

  try {
    await state.transport.send(question, state.currentId, handlers);
  } catch {
    // The socket would not open (a proxy without WebSocket support, say):
    // Server-Sent Events carry this reply and the ones after it.
    state.transport = new StreamChat();
    state.fellBack = true;
    await state.transport.send(question, state.currentId, handlers);
  }
}

function finish(reply, conversationId) {
  if (state.reply !== reply) return;
  cancelAnimationFrame(reply.frame);
  render(reply.view, reply.text);
  reply.view.node.classList.remove("streaming");
  state.reply = null;
  setStreaming(false);
  if (conversationId) state.currentId = conversationId;
  refreshAfterReply();
  $("composer-input").focus();
}

// The first question titles the conversation, and a reply moves it to the top.
async function refreshAfterReply() {
  try {
    await loadConversations();
  } catch (error) {
    fail(error, refreshAfterReply);
    return;
  }
  // A first question that ended without done (an error, a stop over SSE) never
  // learnt its conversation; it is the one a reply touched last, the newest.
  if (!state.currentId) state.currentId = state.conversations[0]?.id || null;
  const current = state.conversations.find((c) => c.id === state.currentId);
  if (current) {
    setTitle(current.title);
    history.replaceState(null, "", `#${current.id}`);
    renderList();
  }
}

// After a lost connection: show what the server kept, and talk to it afresh.
async function reconnect() {
  state.transport = state.fellBack ? new StreamChat() : new SocketChat();
  try {
    await loadConversations();
    // A first question's conversation is not known until done; it is the newest.
    const id = state.currentId || state.conversations[0]?.id;
    if (id) await openConversation(id);
  } catch (error) {
    fail(error, reconnect);
  }
}

function stop() {
  if (state.reply) state.transport.stop();
}

// The composer

function autosize() {
  const input = $("composer-input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
  updateSend();
}

// The drawer (narrow screens)

function openDrawer() {
  $("sidebar").classList.add("open");
  $("scrim").hidden = false;
  $("open-drawer").setAttribute("aria-expanded", "true");
  $("filter").focus();
}

function closeDrawer() {
  if (!$("sidebar").classList.contains("open")) return;
  $("sidebar").classList.remove("open");
  $("scrim").hidden = true;
  $("open-drawer").setAttribute("aria-expanded", "false");
  $("open-drawer").focus();
}

// Wiring

function wire() {
  const input = $("composer-input");
  input.addEventListener("input", autosize);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("stop").addEventListener("click", stop);
  $("new-chat").addEventListener("click", newChat);
  $("filter").addEventListener("input", applyFilter);
  $("sign-out").addEventListener("click", signOut);
  $("open-drawer").addEventListener("click", openDrawer);
  $("close-drawer").addEventListener("click", closeDrawer);
  $("scrim").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || $("confirm-delete").open) return;
    if ($("sidebar").classList.contains("open")) closeDrawer();
    else if (state.reply) stop();
  });
  NARROW.addEventListener("change", () => closeDrawer());
}

async function start() {
  wire();
  try {
    await Promise.all([loadAccount(), loadConversations()]);
  } catch (error) {
    fail(error, () => window.location.reload());
    return;
  }
  const id = window.location.hash.slice(1);
  if (id) await openConversation(id);
  else showConversation(null, []);
  $("composer-input").focus();
}

start();
