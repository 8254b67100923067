/* SPDX-License-Identifier: MIT */
/*
 * An intrusive AVL tree keyed by a 64-bit integer, with parent pointers so
 * in-order walks need no stack. Each manager keeps its reservations in one,
 * keyed by allocation base: finding the reservation holding an address is
 * a predecessor search, O(log n) however many reservations live.
 */
#ifndef CLRMEMTRACE_ANALYSIS_TREE_H
#define CLRMEMTRACE_ANALYSIS_TREE_H

#include <stddef.h>
#include <stdint.h>

struct cmt_tnode {
	struct cmt_tnode *left;
	struct cmt_tnode *right;
	struct cmt_tnode *parent;
	int32_t height;
	uint64_t key;
};

struct cmt_tree {
	struct cmt_tnode *root;
	size_t count;
};

/* Inserts n (its key set); -1 when the key is already present. */
int cmt_tree_insert(struct cmt_tree *t, struct cmt_tnode *n);

/* Removes n, which must be in t. */
void cmt_tree_remove(struct cmt_tree *t, struct cmt_tnode *n);

/* The node with the largest key <= key, or NULL. */
struct cmt_tnode *cmt_tree_find_le(const struct cmt_tree *t, uint64_t key);

/* The node with exactly key, or NULL. */
struct cmt_tnode *cmt_tree_find(const struct cmt_tree *t, uint64_t key);

/* In-order walk: the smallest node, and the one after n. */
struct cmt_tnode *cmt_tree_first(const struct cmt_tree *t);
struct cmt_tnode *cmt_tree_next(const struct cmt_tnode *n);

#endif /* CLRMEMTRACE_ANALYSIS_TREE_H */
