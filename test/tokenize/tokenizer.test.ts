import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { TokenizerError } from "../../src/tokenize/errors.ts";
import { type ChatMessage, Tokenizer } from "../../src/tokenize/tokenizer.ts";
import { trainByteLevelBPE } from "../../src/tokenize/train-bpe.ts";
import { bertPostProcessor } from "../helpers.ts";
import { CHATML_CONFIG, CHATML_DIR, chatmlTokenizerJson } from "./make-fixtures.ts";

const conversation: ChatMessage[] = [
  { role: "user", content: "What is the capital of France?" },
  { role: "assistant", content: "Paris." },
  { role: "user", content: "And of Italy?" },
  { role: "assistant", content: "Rome." },
];

const SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

/** The runs of consecutive masked tokens, decoded. */
function maskedRuns(tok: Tokenizer, ids: number[], mask: boolean[]): string[] {
  const runs: string[] = [];
  let cur: number[] = [];
  ids.forEach((id, i) => {
    if (mask[i]) cur.push(id);
    else if (cur.length) {
      runs.push(tok.decode(cur));
      cur = [];
    }
  });
  if (cur.length) runs.push(tok.decode(cur));
  return runs;
}

describe("Tokenizer: ChatML fixture (SmolLM2 template)", async () => {
  const tok = await Tokenizer.fromDir(CHATML_DIR);

  test("fixture is what make-fixtures.ts generates", async () => {
    const onDisk = JSON.parse(await readFile(join(CHATML_DIR, "tokenizer.json"), "utf8"));
    assert.deepEqual(onDisk, JSON.parse(JSON.stringify(chatmlTokenizerJson())));
    assert.deepEqual(JSON.parse(await readFile(join(CHATML_DIR, "tokenizer_config.json"), "utf8")), CHATML_CONFIG);
  });

  test("special tokens resolve from tokenizer_config.json", () => {
    assert.equal(tok.bosTokenId, 1);
    assert.equal(tok.eosTokenId, 2);
    assert.equal(tok.padTokenId, 2);
    assert.equal(tok.unkTokenId, 0);
    // The tiny corpus runs out of pairs seen twice before 420, so fewer merges were learnt.
    assert.equal(tok.vocabSize, 3 + Object.keys(chatmlTokenizerJson().model.vocab).length);
    assert.ok(tok.vocabSize <= 420);
  });

  test("renders the exact ChatML string", () => {
    const expected =
      SYSTEM +
      "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n" +
      "<|im_start|>assistant\nParis.<|im_end|>\n" +
      "<|im_start|>user\nAnd of Italy?<|im_end|>\n" +
      "<|im_start|>assistant\nRome.<|im_end|>\n";
    assert.equal(tok.applyChatTemplate(conversation), expected);
    assert.equal(
      tok.applyChatTemplate(conversation.slice(0, 1), { addGenerationPrompt: true }),
      `${SYSTEM}<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n`,
    );
    const withSystem = [{ role: "system", content: "Be brief." }, ...conversation.slice(0, 1)];
    assert.ok(
      tok.applyChatTemplate(withSystem).startsWith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"),
    );
  });

  test("assistant mask covers each reply and its <|im_end|>\\n, token for token", () => {
    const { text, ids, assistantMask, attentionMask } = tok.applyChatTemplateWithMask(conversation);
    assert.equal(text, tok.applyChatTemplate(conversation));
    assert.deepEqual(ids, tok.encode(text, { addSpecialTokens: false }).ids);
    assert.equal(assistantMask.length, ids.length);
    assert.equal(attentionMask.length, ids.length);
    // ChatML boundaries fall on pre-token boundaries, so encoding the pieces separately must
    // reproduce both the ids and the mask.
    const pieces: [string, boolean][] = [
      [`${SYSTEM}<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n`, false],
      ["Paris.<|im_end|>\n", true],
      ["<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\n", false],
      ["Rome.<|im_end|>\n", true],
    ];
    const expIds: number[] = [];
    const expMask: boolean[] = [];
    for (const [s, m] of pieces) {
      const p = tok.encode(s, { addSpecialTokens: false }).ids;
      expIds.push(...p);
      expMask.push(...p.map(() => m));
    }
    assert.deepEqual(ids, expIds);
    assert.deepEqual(assistantMask, expMask);
    assert.deepEqual(maskedRuns(tok, ids, assistantMask), ["Paris.<|im_end|>\n", "Rome.<|im_end|>\n"]);
    assert.equal(assistantMask.filter((m, i) => m && ids[i] === tok.eosTokenId).length, 2);
  });

  test("maxLength cuts ids and mask together", () => {
    const full = tok.applyChatTemplateWithMask(conversation);
    const cut = tok.applyChatTemplateWithMask(conversation, { maxLength: 10 });
    assert.deepEqual(cut.ids, full.ids.slice(0, 10));
    assert.deepEqual(cut.assistantMask, full.assistantMask.slice(0, 10));
  });

  test("save + fromDir round trip", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tunekit-tok-"));
    try {
      await tok.save(dir);
      const again = await Tokenizer.fromDir(dir);
      const s = "Hello! <|im_start|>user\nWhat is fine-tuning?<|im_end|>";
      assert.deepEqual(again.encode(s).ids, tok.encode(s).ids);
      assert.equal(again.applyChatTemplate(conversation), tok.applyChatTemplate(conversation));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("decode: skipSpecialTokens, empty input, bad ids", () => {
    const ids = tok.encode("<|im_start|>user\nHello<|im_end|>").ids;
    assert.equal(tok.decode(ids), "<|im_start|>user\nHello<|im_end|>");
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "user\nHello");
    assert.equal(tok.decode([]), "");
    assert.throws(
      () => tok.decode([tok.vocabSize]),
      (e: unknown) => e instanceof TokenizerError && e.key === "ids[0]",
    );
    assert.throws(() => tok.decode([1.5]), TokenizerError);
  });
});

describe("Tokenizer: encoding options", () => {
  const json = trainByteLevelBPE(["hello world, hello there. pairs of sentences here"], {
    vocabSize: 300,
    specialTokens: ["[CLS]", "[SEP]", "[PAD]"],
  });
  // A BERT-like post-processor on a byte-level model: [CLS] A [SEP] (B [SEP]).
  const withTemplate = {
    ...json,
    post_processor: bertPostProcessor(0, 1),
  };
  const tok = Tokenizer.fromJSON(withTemplate, {
    cls_token: "[CLS]",
    sep_token: "[SEP]",
    pad_token: "[PAD]",
    model_max_length: 6,
  });

  test("special tokens, type ids and offsets", () => {
    const e = tok.encode("hello world", { textPair: "hi" });
    assert.equal(e.ids[0], 0);
    assert.equal(e.tokens.at(-1), "[SEP]");
    assert.deepEqual(
      e.tokenTypeIds,
      e.tokens.map((_, i) => (i <= e.tokens.indexOf("[SEP]") ? 0 : 1)),
    );
    const text = "hello world";
    const single = tok.encode(text);
    assert.deepEqual(single.offsets?.[0], [0, 0]);
    assert.equal(
      single.offsets
        ?.slice(1, -1)
        .map(([a, b]) => text.slice(a, b))
        .join(""),
      text,
    );
  });

  test("truncation keeps room for special tokens", () => {
    const long = "hello world hello there hello world hello";
    const e = tok.encode(long, { truncation: true });
    assert.equal(e.ids.length, 6); // model_max_length
    assert.equal(e.tokens[0], "[CLS]");
    assert.equal(e.tokens[5], "[SEP]");
    const p = tok.encode(long, { textPair: "hi there", truncation: "only_first", maxLength: 9 });
    assert.equal(p.ids.length, 9);
    const pairTokens = tok.encode("hi there", { addSpecialTokens: false }).tokens;
    assert.deepEqual(p.tokens.slice(-pairTokens.length - 1), [...pairTokens, "[SEP]"]);
    assert.equal(p.tokens.filter((t) => t === "[SEP]").length, 2);
    assert.throws(
      () => tok.encode(long, { truncation: true, maxLength: 1 }),
      (e: unknown) => e instanceof TokenizerError && e.key === "maxLength",
    );
  });

  test("encodeBatch pads right with pad_token, attention 0", () => {
    const [a, b] = tok.encodeBatch(["hello", "hello world there"], { padding: true });
    assert.equal(a!.ids.length, b!.ids.length);
    const pad = tok.padTokenId!;
    assert.equal(a!.ids.at(-1), pad);
    assert.equal(a!.attentionMask.at(-1), 0);
    assert.equal(a!.attentionMask.filter((x) => x === 1).length, tok.encode("hello").ids.length);
    const left = Tokenizer.fromJSON(withTemplate, { pad_token: "[PAD]", padding_side: "left" });
    const [c] = left.encodeBatch(["hello", "hello world there"], { padding: "longest" });
    assert.equal(c!.ids[0], pad);
    assert.throws(
      () => Tokenizer.fromJSON(json, {}).encodeBatch(["a", "bb"], { padding: true }),
      (e: unknown) => e instanceof TokenizerError && e.key === "pad_token",
    );
  });
});

describe("Tokenizer: chat template details", () => {
  const base = chatmlTokenizerJson();

  test("a boundary inside a pre-token: the straddling token counts as assistant", () => {
    // "assistant: " + "Paris" -> " Paris" is one pre-token that straddles the reply start.
    const tpl =
      "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";
    const tok = Tokenizer.fromJSON(base, { chat_template: tpl });
    const msgs = [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Paris is the capital" },
    ];
    const { ids, assistantMask, text } = tok.applyChatTemplateWithMask(msgs);
    assert.equal(text, "user: Hi\nassistant: Paris is the capital\n");
    const runs = maskedRuns(tok, ids, assistantMask);
    assert.equal(runs.length, 1);
    assert.ok(runs[0]!.endsWith("Paris is the capital\n"), runs[0]);
    assert.ok(!runs[0]!.includes("assistant"), runs[0]);
  });

  test("named templates: default, tool_use with tools, explicit name; missing template is a typed error", () => {
    const cfg = {
      chat_template: [
        { name: "default", template: "D{% for m in messages %}{{ m.content }}{% endfor %}" },
        { name: "tool_use", template: "T{{ tools | length }}{% for m in messages %}{{ m.content }}{% endfor %}" },
      ],
    };
    const tok = Tokenizer.fromJSON(base, cfg);
    const msgs = [{ role: "user", content: "x" }];
    assert.equal(tok.applyChatTemplate(msgs), "Dx");
    assert.equal(tok.applyChatTemplate(msgs, { tools: [{ type: "function" }, { type: "function" }] }), "T2x");
    assert.equal(tok.applyChatTemplate(msgs, { templateName: "default", tools: [{}] }), "Dx");
    assert.throws(
      () => tok.applyChatTemplate(msgs, { templateName: "nope" }),
      (e: unknown) => e instanceof TokenizerError && e.key === "chat_template",
    );
    assert.throws(
      () => Tokenizer.fromJSON(base, {}).applyChatTemplate(msgs),
      (e: unknown) => e instanceof TokenizerError && e.key === "chat_template",
    );
  });

  test("template sees special tokens and raise_exception surfaces as TokenizerError", () => {
    const tpl =
      "{{ bos_token }}{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}{{ m.content + eos_token }}{% endfor %}";
    const tok = Tokenizer.fromJSON(base, { bos_token: "<|im_start|>", eos_token: "<|im_end|>", chat_template: tpl });
    assert.equal(tok.applyChatTemplate([{ role: "user", content: "a" }]), "<|im_start|>a<|im_end|>");
    assert.throws(() => tok.applyChatTemplate([{ role: "tool", content: "a" }]), /no tools/);
  });

  test("{% generation %} markers (SmolLM3-style) are accepted and ignored", () => {
    const tpl =
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' %}{% generation %}{{ m.content }}<|im_end|>{% endgeneration %}{% else %}{{ m.content }}<|im_end|>{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    const tok = Tokenizer.fromJSON(base, { eos_token: "<|im_end|>", chat_template: tpl });
    const { ids, assistantMask, text } = tok.applyChatTemplateWithMask(conversation.slice(0, 3));
    // Like transformers (trim_blocks), the newline right after a block tag is dropped.
    assert.equal(
      text,
      "<|im_start|>user\nWhat is the capital of France?<|im_end|><|im_start|>assistant\nParis.<|im_end|><|im_start|>user\nAnd of Italy?<|im_end|>",
    );
    assert.deepEqual(maskedRuns(tok, ids, assistantMask), ["Paris.<|im_end|>"]);
  });
});

describe("Tokenizer: special-token resolution and errors", () => {
  const base = chatmlTokenizerJson();

  test("special_tokens_map.json overrides tokenizer_config.json; AddedToken objects accepted", () => {
    const tok = Tokenizer.fromJSON(
      base,
      { eos_token: { content: "<|im_end|>", special: true } },
      { eos_token: "<|endoftext|>" },
    );
    assert.equal(tok.eosTokenId, 0);
    assert.equal(
      Tokenizer.fromJSON(base, { eos_token: { __type: "AddedToken", content: "<|im_end|>" } }).eosTokenId,
      2,
    );
  });

  test("class defaults (GPT2Tokenizer) fill gaps; explicit null disables them", () => {
    const tok = Tokenizer.fromJSON(base, { tokenizer_class: "GPT2TokenizerFast" });
    assert.equal(tok.eosTokenId, 0);
    assert.equal(tok.bosTokenId, 0);
    assert.equal(tok.padTokenId, undefined);
    assert.equal(
      Tokenizer.fromJSON(base, { tokenizer_class: "GPT2TokenizerFast", bos_token: null }).bosTokenId,
      undefined,
    );
  });

  test("an unknown special token names the file and key", () => {
    assert.throws(
      () => Tokenizer.fromJSON(base, { eos_token: "</s>" }),
      (e: unknown) => e instanceof TokenizerError && e.file === "tokenizer_config.json" && e.key === "eos_token",
    );
    assert.throws(
      () => Tokenizer.fromJSON({ version: "1.0" }),
      (e: unknown) => e instanceof TokenizerError && e.key === "model",
    );
    assert.throws(() => Tokenizer.fromJSON(base, []), TokenizerError);
  });

  test("fromDir: missing tokenizer.json, bad config JSON, chat_template.jinja", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tunekit-tok-"));
    try {
      await assert.rejects(
        Tokenizer.fromDir(dir),
        (e: unknown) => e instanceof TokenizerError && e.file.endsWith("tokenizer.json"),
      );
      await writeFile(join(dir, "tokenizer.json"), JSON.stringify(base));
      await writeFile(join(dir, "tokenizer_config.json"), '{"eos_token": "<|im_end|>",}');
      await assert.rejects(Tokenizer.fromDir(dir), /tokenizer_config\.json.*invalid JSON at line 1/);
      await writeFile(join(dir, "tokenizer_config.json"), '{"eos_token": "</s>"}');
      await assert.rejects(
        Tokenizer.fromDir(dir),
        (e: unknown) => e instanceof TokenizerError && e.file === join(dir, "tokenizer_config.json"),
      );
      await writeFile(join(dir, "tokenizer_config.json"), '{"eos_token": "<|im_end|>", "chat_template": "old"}');
      await writeFile(join(dir, "chat_template.jinja"), "{% for m in messages %}[{{ m.content }}]{% endfor %}");
      const tok = await Tokenizer.fromDir(dir);
      assert.equal(tok.applyChatTemplate([{ role: "user", content: "q" }]), "[q]");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("added_tokens_decoder entries missing from tokenizer.json are added", () => {
    const tok = Tokenizer.fromJSON(base, { added_tokens_decoder: { "420": { content: "<tool>", special: true } } });
    assert.equal(tok.tokenToId("<tool>"), 420);
    assert.equal(tok.vocabSize, 421);
    assert.deepEqual(tok.encode("a<tool>b").tokens, ["a", "<tool>", "b"]);
  });
});
