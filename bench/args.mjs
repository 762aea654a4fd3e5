// The command line of a bench script: its arguments, `--flag`s and `--name value` options.

export const args = process.argv.slice(2);

export const flag = (name) => args.includes(name);

/** The value after `name`, or `fallback` when it is not given. */
export const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
