/**
 * RFC 9457 problem details: every PayLane HTTP error is
 * `application/problem+json` with a title and a detail naming what is wrong.
 */
export interface Problem {
  type?: string;
  title: string;
  status: number;
  detail?: string;
  [extension: string]: unknown;
}

export function problemResponse(problem: Problem, headers?: Record<string, string>): Response {
  const body = { type: "about:blank", ...problem };
  return new Response(JSON.stringify(body), {
    status: problem.status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}
