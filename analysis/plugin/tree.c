/* SPDX-License-Identifier: MIT */
/*
 * The AVL tree.
 */
#include "tree.h"

static int32_t height(const struct cmt_tnode *n)
{
	return n ? n->height : 0;
}

static void update(struct cmt_tnode *n)
{
	int32_t l = height(n->left), r = height(n->right);

	n->height = 1 + (l > r ? l : r);
}

/* Puts `child` where `old` hung under `parent` (the root when parent is NULL). */
static void replace_child(struct cmt_tree *t, struct cmt_tnode *parent, struct cmt_tnode *old,
			  struct cmt_tnode *child)
{
	if (!parent) {
		t->root = child;
	} else if (parent->left == old) {
		parent->left = child;
	} else {
		parent->right = child;
	}
	if (child) {
		child->parent = parent;
	}
}

static struct cmt_tnode *rotate_left(struct cmt_tree *t, struct cmt_tnode *x)
{
	struct cmt_tnode *y = x->right;

	x->right = y->left;
	if (y->left) {
		y->left->parent = x;
	}
	replace_child(t, x->parent, x, y);
	y->left = x;
	x->parent = y;
	update(x);
	update(y);
	return y;
}

static struct cmt_tnode *rotate_right(struct cmt_tree *t, struct cmt_tnode *x)
{
	struct cmt_tnode *y = x->left;

	x->left = y->right;
	if (y->right) {
		y->right->parent = x;
	}
	replace_child(t, x->parent, x, y);
	y->right = x;
	x->parent = y;
	update(x);
	update(y);
	return y;
}

/* Restores the AVL balance from n up to the root. */
static void rebalance(struct cmt_tree *t, struct cmt_tnode *n)
{
	while (n) {
		int32_t balance;

		update(n);
		balance = height(n->left) - height(n->right);
		if (balance > 1) {
			if (height(n->left->left) < height(n->left->right)) {
				rotate_left(t, n->left);
			}
			n = rotate_right(t, n);
		} else if (balance < -1) {
			if (height(n->right->right) < height(n->right->left)) {
				rotate_right(t, n->right);
			}
			n = rotate_left(t, n);
		}
		n = n->parent;
	}
}

int cmt_tree_insert(struct cmt_tree *t, struct cmt_tnode *n)
{
	struct cmt_tnode *parent = NULL, **link = &t->root;

	while (*link) {
		parent = *link;
		if (n->key == parent->key) {
			return -1;
		}
		link = n->key < parent->key ? &parent->left : &parent->right;
	}
	n->left = NULL;
	n->right = NULL;
	n->parent = parent;
	n->height = 1;
	*link = n;
	t->count++;
	rebalance(t, parent);
	return 0;
}

void cmt_tree_remove(struct cmt_tree *t, struct cmt_tnode *n)
{
	struct cmt_tnode *start;

	if (!n->left || !n->right) {
		struct cmt_tnode *child = n->left ? n->left : n->right;

		start = n->parent;
		replace_child(t, n->parent, n, child);
	} else {
		struct cmt_tnode *s = n->right;

		while (s->left) {
			s = s->left;
		}
		if (s->parent != n) {
			start = s->parent;
			replace_child(t, s->parent, s, s->right);
			s->right = n->right;
			n->right->parent = s;
		} else {
			start = s;
		}
		s->left = n->left;
		n->left->parent = s;
		replace_child(t, n->parent, n, s);
		s->height = n->height;
	}
	n->left = n->right = n->parent = NULL;
	t->count--;
	rebalance(t, start);
}

struct cmt_tnode *cmt_tree_find_le(const struct cmt_tree *t, uint64_t key)
{
	struct cmt_tnode *n = t->root, *best = NULL;

	while (n) {
		if (n->key == key) {
			return n;
		}
		if (n->key < key) {
			best = n;
			n = n->right;
		} else {
			n = n->left;
		}
	}
	return best;
}

struct cmt_tnode *cmt_tree_find(const struct cmt_tree *t, uint64_t key)
{
	struct cmt_tnode *n = cmt_tree_find_le(t, key);

	return n && n->key == key ? n : NULL;
}

struct cmt_tnode *cmt_tree_first(const struct cmt_tree *t)
{
	struct cmt_tnode *n = t->root;

	while (n && n->left) {
		n = n->left;
	}
	return n;
}

struct cmt_tnode *cmt_tree_next(const struct cmt_tnode *n)
{
	if (n->right) {
		n = n->right;
		while (n->left) {
			n = n->left;
		}
		return (struct cmt_tnode *)n;
	}
	while (n->parent && n->parent->right == n) {
		n = n->parent;
	}
	return n->parent;
}
