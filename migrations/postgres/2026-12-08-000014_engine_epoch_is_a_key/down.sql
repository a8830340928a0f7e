DROP INDEX engines_fence;
