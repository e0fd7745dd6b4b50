// Replies are Markdown. markdown-it with `html: false` escapes any markup the
// model writes, so `<script>` or `<img onerror>` arrive as text; its link
// check refuses javascript: and similar URLs. The page CSP is the second wall.
import markdownit from "../vendor/markdown-it/markdown-it.js";

const md = markdownit({ html: false, linkify: true, breaks: false });

const defaultLinkOpen =
  md.renderer.rules.link_open ||
  ((tokens, index, options, env, self) => self.renderToken(tokens, index, options));

// Links leave the workspace in a new tab that cannot reach back into this one.
md.renderer.rules.link_open = (tokens, index, options, env, self) => {
  tokens[index].attrSet("target", "_blank");
  tokens[index].attrSet("rel", "noopener noreferrer");
  return defaultLinkOpen(tokens, index, options, env, self);
};

export function renderMarkdown(text) {
  return md.render(text);
}
