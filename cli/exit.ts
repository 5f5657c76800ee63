/** Exit codes of DESIGN.md's command line: 0 ok, 2 bad input, 1 anything else. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_BAD_INPUT = 2;

/** Bad input the user can fix; its lines are printed as-is on stderr. */
export class BadInput extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join("\n"));
  }
}
