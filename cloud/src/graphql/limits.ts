/**
 * What one GraphQL request may ask for, checked while the query is parsed
 * and validated, before any resolver runs (so before any database query):
 * its size in tokens, its aliases, its depth and its cost. The numbers are
 * in docs/graphql.md; lists are also capped per field (`limit`, as REST).
 */
import { costLimitRule } from "@escape.tech/graphql-armor-cost-limit";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import {
  type ASTVisitor,
  GraphQLError,
  type GraphQLOutputType,
  getNamedType,
  getNullableType,
  isListType,
  isObjectType,
  Kind,
  parse,
  type SelectionSetNode,
  type ValidationContext,
} from "graphql";
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
  /**
   * Rows a query may ask for, counted as the product of the list sizes
   * above each object it selects: a `limit` argument counts as its value
   * (a variable as the largest page, 500), its default when absent, and a
   * list without one (sites, activeAlerts) as 10; each object selected adds
   * the rows above it. The fleet overview's default page (100 kiosks, their
   * telemetry) counts 300; 1000 kiosks each with 50 check-ins and each
   * check-in's kiosk count 152,000 and are refused.
   */
  maxRows: 50_000,
} as const;

const ASSUMED_LIST = 10;
const VARIABLE_LIMIT = 500;
const LARGEST_PAGE = 1000;

/** The rows an operation may read: graphql-armor's cost counts the query's shape, this counts its lists. */
function maxRowsRule(max: number) {
  return (context: ValidationContext): ASTVisitor => {
    const schema = context.getSchema();
    function rows(set: SelectionSetNode, type: GraphQLOutputType, mult: number, fragments: Set<string>): number {
      const object = getNamedType(type);
      if (!isObjectType(object)) return 0;
      let total = 0;
      for (const sel of set.selections) {
        if (sel.kind === Kind.INLINE_FRAGMENT) {
          const on = sel.typeCondition ? schema.getType(sel.typeCondition.name.value) : object;
          if (on && isObjectType(on)) total += rows(sel.selectionSet, on, mult, fragments);
        } else if (sel.kind === Kind.FRAGMENT_SPREAD) {
          const name = sel.name.value;
          const fragment = context.getFragment(name);
          if (!fragment || fragments.has(name)) continue;
          const on = schema.getType(fragment.typeCondition.name.value);
          if (on && isObjectType(on)) total += rows(fragment.selectionSet, on, mult, new Set([...fragments, name]));
        } else {
          const def = object.getFields()[sel.name.value];
          if (!def || !sel.selectionSet) continue;
          let m = mult;
          const limitArg = def.args.find((a) => a.name === "limit");
          if (limitArg) {
            const given = sel.arguments?.find((a) => a.name.value === "limit")?.value;
            const n =
              given?.kind === Kind.INT
                ? Number(given.value)
                : given?.kind === Kind.VARIABLE
                  ? VARIABLE_LIMIT
                  : Number(limitArg.defaultValue ?? VARIABLE_LIMIT);
            // Above the largest page any list takes, the field itself refuses the limit, naming it (BAD_USER_INPUT).
            m *= Math.min(Math.max(n, 1), LARGEST_PAGE);
          } else if (isListType(getNullableType(def.type)) && sel.name.value !== "items") {
            // `items` is the list its page's `limit` already counted.
            m *= ASSUMED_LIST;
          }
          total += m + rows(sel.selectionSet, def.type, m, fragments);
        }
      }
      return total;
    }
    return {
      OperationDefinition(op) {
        const root = schema.getRootType(op.operation);
        if (!root) return;
        const n = rows(op.selectionSet, root, 1, new Set());
        if (n > max) {
          context.reportError(
            new GraphQLError(
              `Query may read about ${n} rows, at most ${max}; ask for smaller limits or fewer nested lists`,
              { nodes: [op], extensions: { code: "QUERY_TOO_COSTLY" } },
            ),
          );
        }
      },
    };
  };
}

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
      addValidationRule(maxRowsRule(l.maxRows));
      addValidationRule(depth);
      addValidationRule(cost);
    },
  };
  return [tokens, shape];
}
