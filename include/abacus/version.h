/* The Abacus version, one place. */
#ifndef ABACUS_VERSION_H
#define ABACUS_VERSION_H

#define AB_VERSION "0.1.0"

#endif
