(class_definition name: (identifier) @name) @definition.class
(function_definition name: (identifier) @name) @definition.function

(class_definition
  superclasses: (argument_list [(identifier) (attribute)] @inherit.base)) @inherit.class

(import_statement name: (dotted_name) @import.module) @import
(import_statement name: (aliased_import name: (dotted_name) @import.module)) @import
(import_from_statement
  module_name: [(dotted_name) (relative_import)] @import.module
  name: [(dotted_name) @import.name (aliased_import name: (dotted_name) @import.name)]) @import
(import_from_statement
  module_name: [(dotted_name) (relative_import)] @import.module
  (wildcard_import)) @import

(call function: (identifier) @call.name) @call
(call function: (attribute attribute: (identifier) @call.name)) @call
