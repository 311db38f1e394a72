(struct_item name: (type_identifier) @name) @definition.class
(enum_item name: (type_identifier) @name) @definition.class
(union_item name: (type_identifier) @name) @definition.class
(trait_item name: (type_identifier) @name) @definition.class
(mod_item name: (identifier) @name) @definition.module
(function_item name: (identifier) @name) @definition.function
(impl_item
  type: [(type_identifier) @receiver (generic_type type: (type_identifier) @receiver)]
  body: (declaration_list (function_item name: (identifier) @name) @definition.method))

(impl_item
  trait: [(type_identifier) (scoped_type_identifier) (generic_type)] @inherit.base
  type: [(type_identifier) (generic_type type: (type_identifier))] @inherit.class)

(use_declaration argument: (_) @import.module) @import
(mod_item name: (identifier) @import.module !body) @import

(call_expression function: (identifier) @call.name) @call
(call_expression function: (field_expression field: (field_identifier) @call.name)) @call
(call_expression function: (scoped_identifier name: (identifier) @call.name)) @call
(macro_invocation macro: (identifier) @call.name) @call
