/** Types of scripts/build-library.mjs (plain JavaScript: it runs before anything is compiled). */
export const LIB_DIR: string;
export const LIB_ENTRIES: Record<string, string>;
export function libraryStaleness(): string | undefined;
export function buildLibrary(): Promise<void>;
