import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const WORDS = ('see you at the station tomorrow did you get the photos lunch on friday sounds good ' +
  'happy birthday call me when you land the cat knocked over the plant again running late ' +
  'how was the concert send the recipe please').split(' ');

/** A small deterministic generator so the sample looks the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function chat(people: string[], messages: number, seed: number) {
  const r = rng(seed);
  const start = Date.UTC(2026, 0, 1);
  return Array.from({ length: messages }, (_, i) => ({
    id: i + 1,
    from: people[Math.floor(r() * people.length)],
    sentAt: new Date(start + i * 97_000).toISOString(),
    text: Array.from({ length: 3 + Math.floor(r() * 12) }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' '),
  }));
}

/** Writes a sample chat history (a few hundred KB of JSON and text) into `dir`. */
export async function writeSampleChats(dir: string): Promise<void> {
  await mkdir(join(dir, 'chats'), { recursive: true });
  await mkdir(join(dir, 'media'), { recursive: true });
  const chats: Array<[string, string[], number]> = [
    ['alice-and-bob.json', ['alice', 'bob'], 1500],
    ['family-group.json', ['mum', 'dad', 'sam', 'alex'], 1200],
    ['book-club.json', ['ines', 'kofi', 'mei', 'raj', 'tom'], 600],
  ];
  let seed = 7;
  for (const [name, people, n] of chats) {
    await writeFile(join(dir, 'chats', name), JSON.stringify(chat(people, n, seed++), null, 2));
  }
  await writeFile(join(dir, 'media', 'voice-note-0001.txt'), 'transcript: running late, save me a seat\n');
  await writeFile(join(dir, 'settings.json'), JSON.stringify({ theme: 'dark', backup: { enabled: true } }, null, 2));
}
