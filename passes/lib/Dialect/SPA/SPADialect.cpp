//===- SPADialect.cpp - the spa dialect -----------------------------------===//

#include "spa/Dialect/SPA/SPADialect.h"

using namespace mlir;
using namespace spa;

#include "spa/Dialect/SPA/SPADialect.cpp.inc"

void SPADialect::initialize() {}
