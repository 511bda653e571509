/**
 * What one GraphQL request may ask for, checked while the query is parsed
 * and validated, before any resolver runs (so before any database query):
 * its size in tokens, its aliases, its depth and its cost. The numbers are
 * in docs/graphql.md; lists are also capped per field (`limit`, as REST).
 */
import { costLimitRule } from "@escape.tech/graphql-armor-cost-limit";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import { type ASTVisitor, GraphQLError, parse, type ValidationContext } from "graphql";
import type { Plugin } from "graphql-yoga";

export const GRAPHQL_LIMITS = {
  /** Lexical tokens in a document: bounds the parser's work on a huge query. */
  maxTokens: 2000,
  /** Aliased fields in a document: aliases repeat a field as many times as asked. */
  maxAliases: 30,
  /** Nested selections (introspection excepted): `{ site { devices { commands { items { id } } } } }` is 5. */
  maxDepth: 8,
  /**
   * graphql-armor's cost: each object field costs objectCost and each scalar
   * scalarCost, multiplied by depthCostFactor for each level of depth. The
   * dashboard's device page costs about 150, the fleet overview about 55.
   * It counts the query's shape, not the rows a list returns (see `limit`).
   */
  maxCost: 1000,
  objectCost: 2,
  scalarCost: 1,
  depthCostFactor: 1.5,
} as const;

function maxAliasesRule(max: number) {
  return (context: ValidationContext): ASTVisitor => {
    let aliases = 0;
    return {
      Field(node) {
        if (node.alias && ++aliases === max + 1) {
          context.reportError(
            new GraphQLError(`Query has more than ${max} aliases; ask for fewer fields under other names`, {
              nodes: [node],
              extensions: { code: "QUERY_TOO_LARGE" },
            }),
          );
        }
      },
    };
  };
}

type Rule = (context: ValidationContext) => ASTVisitor;

/**
 * graphql-armor's refusal reported as a validation error with a code a client
 * can tell apart (armor throws one with none, and words it a syntax error).
 */
function refuseAs(code: string) {
  return {
    propagateOnRejection: false,
    onReject: [
      (context: ValidationContext | null, err: GraphQLError) =>
        context?.reportError(new GraphQLError(err.message.replace(/^Syntax Error: /, ""), { extensions: { code } })),
    ],
  };
}

export function limitPlugins(): Plugin[] {
  const l = GRAPHQL_LIMITS;
  const tokens: Plugin = {
    onParse({ setParseFn }) {
      setParseFn((source, options) => parse(source, { ...options, maxTokens: l.maxTokens }));
    },
  };
  const depth = maxDepthRule({
    n: l.maxDepth,
    exposeLimits: true,
    ignoreIntrospection: true,
    ...refuseAs("QUERY_TOO_DEEP"),
  }) as Rule;
  const cost = costLimitRule({
    maxCost: l.maxCost,
    objectCost: l.objectCost,
    scalarCost: l.scalarCost,
    depthCostFactor: l.depthCostFactor,
    exposeLimits: true,
    ignoreIntrospection: true,
    ...refuseAs("QUERY_TOO_COSTLY"),
  }) as Rule;
  const shape: Plugin = {
    onValidate({ addValidationRule }) {
      addValidationRule(maxAliasesRule(l.maxAliases));
      addValidationRule(depth);
      addValidationRule(cost);
    },
  };
  return [tokens, shape];
}
