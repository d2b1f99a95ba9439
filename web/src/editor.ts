// The SQL editor: CodeMirror 6 with PostgreSQL highlighting, completion of schemas, tables and
// columns from the source's catalog, Ctrl/Cmd+Enter to run, and an error position marker.

import { autocompletion, closeBrackets, closeBracketsKeymap, closeCompletion, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { bracketMatching, defaultHighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { PostgreSQL, sql, SQLNamespace } from "@codemirror/lang-sql";
import { EditorState, Prec, StateEffect, StateField } from "@codemirror/state";
import { Decoration, DecorationSet, EditorView, highlightActiveLine, keymap, lineNumbers, placeholder } from "@codemirror/view";
import { Catalog } from "./types";

/** The catalog as lang-sql's completion namespace: schema → table → columns. */
export function namespaceOf(catalog: Catalog | null): SQLNamespace {
  const ns: Record<string, Record<string, string[]>> = {};
  if (!catalog) return ns;
  for (const schema of catalog.schemas) {
    const tables: Record<string, string[]> = {};
    for (const rel of schema.relations) tables[rel.name] = rel.columns.map((c) => c.name);
    ns[schema.name] = tables;
  }
  return ns;
}

const setError = StateEffect.define<{ from: number; to: number } | null>();
const errorMark = Decoration.mark({ class: "cm-sql-error", attributes: { "aria-invalid": "true" } });
const errorField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(value, tr) {
    value = value.map(tr.changes);
    for (const e of tr.effects) {
      if (e.is(setError)) value = e.value && e.value.to > e.value.from ? Decoration.set([errorMark.range(e.value.from, e.value.to)]) : Decoration.none;
    }
    if (tr.docChanged) value = Decoration.none;
    return value;
  },
  provide: (f) => EditorView.decorations.from(f),
});

export interface SqlEditor {
  view: EditorView;
  text(): string;
  /** Closes an open completion list (running the statement makes it moot). */
  closeCompletion(): void;
  markError(offset: number | null): void;
  focus(): void;
}

// The page's look for the editor. CodeMirror's styles (these included) are mounted as
// constructed style sheets adopted by a shadow root: in the document itself they would be a
// <style> element, which the pages' Content-Security-Policy (no inline styles) refuses.
const pageTheme = EditorView.theme({
  "&": { minHeight: "10rem", maxHeight: "45vh", fontSize: "14px", backgroundColor: "var(--bg-raised)", color: "var(--fg)" },
  "&.cm-focused": { outline: "3px solid var(--focus)", outlineOffset: "-3px" },
  ".cm-scroller": { fontFamily: "var(--mono)" },
  ".cm-gutters": { backgroundColor: "var(--bg-soft)", color: "var(--fg-soft)", borderRight: "1px solid var(--border)" },
  ".cm-content": { caretColor: "var(--fg)" },
  ".cm-activeLine": { backgroundColor: "color-mix(in srgb, var(--accent) 6%, transparent)" },
  ".cm-sql-error": { textDecoration: "wavy underline var(--fail)", backgroundColor: "var(--fail-bg)" },
});

export function sqlEditor(host: HTMLElement, catalog: Catalog | null, onRun: () => void, initial = ""): SqlEditor {
  const root = host.attachShadow({ mode: "open", delegatesFocus: true });
  const view = new EditorView({
    parent: root,
    root,
    state: EditorState.create({
      doc: initial,
      extensions: [
        lineNumbers(),
        history(),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        sql({ dialect: PostgreSQL, schema: namespaceOf(catalog), defaultSchema: "public", upperCaseKeywords: false }),
        autocompletion(),
        placeholder("SELECT … — Ctrl+Enter runs"),
        errorField,
        Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => (onRun(), true), preventDefault: true }])),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap, indentWithTab]),
        EditorView.contentAttributes.of({ "aria-label": "SQL", "aria-multiline": "true" }),
        EditorView.lineWrapping,
        pageTheme,
      ],
    }),
  });
  return {
    view,
    text: () => view.state.doc.toString(),
    closeCompletion: () => void closeCompletion(view),
    markError(offset) {
      if (offset === null) {
        view.dispatch({ effects: setError.of(null) });
        return;
      }
      const doc = view.state.doc;
      const from = Math.min(offset, doc.length);
      // The token at the position: up to the next space or punctuation, at least one character.
      const rest = doc.sliceString(from, Math.min(from + 64, doc.length));
      const m = /^[\p{L}\p{N}_$"']+/u.exec(rest);
      const to = Math.min(from + Math.max(m ? m[0].length : 1, 1), doc.length);
      const anchor = to > from ? from : Math.max(from - 1, 0);
      view.dispatch({
        effects: setError.of({ from: anchor, to: Math.max(to, anchor + 1 <= doc.length ? anchor + 1 : anchor) }),
        selection: { anchor },
        scrollIntoView: true,
      });
    },
    focus: () => view.focus(),
  };
}
