/**
 * A loader's error: which input, what is wrong with it, and what to do. The CLI prints it as
 * `cartorio load: <input>: <problem>` and the hint on its own line.
 */
export class LoadError extends Error {
  readonly input: string;
  readonly problem: string;
  readonly hint: string | undefined;

  constructor(input: string, problem: string, hint?: string, options?: { cause?: unknown }) {
    super(`${input}: ${problem}`, options);
    this.input = input;
    this.problem = problem;
    this.hint = hint;
  }
}
