/**
 * GraphQL at /api/graphql (graphql-yoga on Hono's fetch handler): the same
 * services, tokens and permissions as the REST API, the live feed as
 * subscriptions over server-sent events, and limits checked before anything
 * runs (limits.ts). GraphiQL is off: yoga's loads its scripts from a CDN,
 * which this cloud serves nothing from; use any GraphQL client with a token.
 *
 * Errors: the ones resolvers mean (access.ts) reach the client as they are;
 * anything else is masked (no SQL, no stack) and logged with the id the
 * client's message names.
 */
import { randomUUID } from "node:crypto";
import { GraphQLError } from "graphql";
import { createSchema, createYoga, maskError, type YogaServerInstance } from "graphql-yoga";
import type { Logger } from "pino";
import { AuditLog } from "../accounts/audit-log.ts";
import type { OperatorTokenConfig } from "../api/auth.ts";
import { PaymentService } from "../ledger/payment-service.ts";
import { authenticate } from "./access.ts";
import { limitPlugins } from "./limits.ts";
import { type Ctx, createResolvers, type ResolverServices } from "./resolvers.ts";
import { typeDefs } from "./schema.ts";

export const GRAPHQL_PATH = "/api/graphql";

/** The resolvers' services but the two made here (payments, audit), and what only the server needs. */
export type GraphQLOptions = Omit<ResolverServices, "payments" | "audit"> & {
  tokens: OperatorTokenConfig;
  logger?: Logger;
};

/** A GraphQL error thrown on purpose (ours or graphql-js'), not one wrapping an unexpected exception. */
function isIntended(err: unknown): boolean {
  if (!(err instanceof GraphQLError)) return false;
  return err.originalError == null || isIntended(err.originalError);
}

/** What the HTTP side knows of a request and passes to yoga.fetch. */
export interface GraphQLServerContext {
  /** The client's address (rate-limit.ts clientAddress), for the audit log. */
  address?: string | null;
}

export function createGraphQL(o: GraphQLOptions): YogaServerInstance<GraphQLServerContext, Ctx> {
  const audit = new AuditLog(o.db);
  const schema = createSchema<Ctx>({
    typeDefs,
    resolvers: createResolvers({
      ...o,
      payments: new PaymentService({ db: o.db, presence: o.presence }),
      // A row that cannot be written is logged; the mutation's answer stands (as REST's audit trail does).
      audit: (row) =>
        audit
          .write(row)
          .catch((err: Error) => o.logger?.error({ err: err.message, action: row.action }, "audit row not written")),
    }),
  });
  return createYoga<GraphQLServerContext, Ctx>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    graphiql: false,
    landingPage: false,
    // Same origin only: the dashboard is served by this cloud; a page elsewhere gets no CORS grant to read answers.
    cors: false,
    // yoga's own logger would print to the console; errors are logged here, with their id.
    logging: false,
    plugins: limitPlugins(),
    context: async ({ request, address }): Promise<Ctx> => ({
      caller: await authenticate(request, o.tokens),
      address: address ?? null,
    }),
    maskedErrors: {
      maskError(error) {
        if (isIntended(error)) return error as GraphQLError;
        const id = randomUUID();
        const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
        o.logger?.error({ errorId: id, err: original, path: (error as GraphQLError).path }, "graphql request failed");
        // isDev false: never the original error, whatever NODE_ENV says.
        return maskError(error, `the request failed on the server; it is logged with error id ${id}`, false);
      },
    },
  });
}
