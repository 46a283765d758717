/**
 * The demo's task names and one-line descriptions (no heavy imports: `tunekit demo --list` and
 * argument checks load only this).
 *
 * @example
 * ```ts
 * for (const t of DEMO_TASKS) console.log(t, TASK_SUMMARY[t]);
 * ```
 */

/** The demo tasks, in the order `tunekit demo` runs them. */
export const DEMO_TASKS = ["text", "images", "generation"] as const;
export type DemoTask = (typeof DEMO_TASKS)[number];

/** One line per task for `--list`. */
export const TASK_SUMMARY: Record<DemoTask, string> = {
  text: "spam classification (SpamAssassin): the bundled LM + a classification head",
  images: "digits 5-9 from 10 images each: the CNN pre-trained on digits 0-4",
  generation: "Moby-Dick style: LoRA on the bundled LM; held-out perplexity and samples",
};
