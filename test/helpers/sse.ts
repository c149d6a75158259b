/** Server-Sent Events as a test reads them: blocks split off a growing text, `event:` and JSON `data:`. */

export interface SseEvent {
  readonly type: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read event bodies of many shapes
  readonly data: any;
}

/** Takes every complete block off `text`; answers the events and what is left for the next read. */
export function takeSseEvents(text: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  let rest = text;
  let end = rest.indexOf("\n\n");
  while (end >= 0) {
    const block = rest.slice(0, end);
    rest = rest.slice(end + 2);
    const type = /^event: (.*)$/m.exec(block)?.[1];
    const data = /^data: (.*)$/m.exec(block)?.[1];
    if (type !== undefined && data !== undefined) events.push({ type, data: JSON.parse(data) });
    end = rest.indexOf("\n\n");
  }
  return { events, rest };
}
