/*
 * An intrusive doubly linked list of deadlines, for timeouts of one fixed length:
 * appending at now + that length keeps the list in deadline order, so the head is
 * always the next to expire and every operation is O(1) (no heap).
 */
#ifndef WZP_COMMON_DEADLINE_LIST_H
#define WZP_COMMON_DEADLINE_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "common/time.h"

typedef struct wzp_dl_node {
    struct wzp_dl_node *prev, *next;
    wzp_ts at; /* its deadline */
    bool linked;
} wzp_dl_node;

typedef struct wzp_dl_list {
    wzp_dl_node *head, *tail;
} wzp_dl_list;

/* The record a node is embedded in. */
#define WZP_DL_OWNER(node, type, member) ((type *)(void *)((char *)(node)-offsetof(type, member)))

static inline void wzp_dl_remove(wzp_dl_list *l, wzp_dl_node *n)
{
    if (!n->linked)
        return;
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
    n->linked = false;
}

/* (Re)places n at the tail with deadline at (no earlier than the tail's, for the order). */
static inline void wzp_dl_append(wzp_dl_list *l, wzp_dl_node *n, wzp_ts at)
{
    wzp_dl_remove(l, n);
    n->at = at;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    n->linked = true;
}

#endif
