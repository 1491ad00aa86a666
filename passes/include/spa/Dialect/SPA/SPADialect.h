//===- SPADialect.h - the spa dialect ---------------------------*- C++ -*-===//

#ifndef SPA_DIALECT_SPA_SPADIALECT_H
#define SPA_DIALECT_SPA_SPADIALECT_H

#include "mlir/IR/Dialect.h"

#include "spa/Dialect/SPA/SPADialect.h.inc"

#endif // SPA_DIALECT_SPA_SPADIALECT_H
